#!/usr/bin/env bash
# Pretrain the shapes world's base (recipes/shapes_t2i.toml) on one GPU for a fixed time, evaluate it and pack it.
#
# On 2 CPU cores the shipped recipe's 7,250 steps at batch 32 leave the base drawing blobs (README, "The shapes
# base model"): its geometry is learned, but several times too slowly. This script gives the same recipe the
# samples a GPU can afford in minutes. On the device machine (torch is there; the rest is carried as wheels):
#   here:   bash examples/gpu/fetch_wheels.sh
#   device: run(command="bash examples/gpu/pretrain_shapes_base.sh", carry=[".whl"], timeout_s=600)
# Settings (environment): MINUTES of training (7), BATCH (128), WORKERS for data (6), COUNT of evaluation
# samples (500), OUT for what comes back ($OUT on the device machine, else runs/shapes_t2i_gpu/out).
# It writes OUT/shapes-base.tar.gz (model/ in diffusers layout, eval/, the last sample grid), OUT/shapes_t2i.md
# and OUT/log. Unpack with `tar xzf shapes-base.tar.gz` and copy model/ to examples/shapes-base.
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES=${MINUTES:-7} BATCH=${BATCH:-128} WORKERS=${WORKERS:-6} COUNT=${COUNT:-500}
RUN=runs/shapes_t2i_gpu
OUT=${OUT:-$RUN/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/byg-site .whl/*.whl
  export PYTHONPATH=/tmp/byg-site:$PWD
else
  export PYTHONPATH=$PWD
fi
{
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  rm -rf "$RUN" "${RUN}_init"
  python3 -m byg_cli.cli train recipes/shapes_t2i.toml --set "run.dir=\"$RUN\"" --set "model.path=\"${RUN}_init\"" \
    --set train.steps=1000000 --set "train.max_minutes=$MINUTES" --set "train.batch_size=$BATCH" \
    --set "train.data_workers=$WORKERS" --set train.checkpoint_every=5000 --set train.sample_every=5000 \
    --set train.log_every=50
  python3 -m byg_cli.cli eval shapes --model "$RUN/model" --count "$COUNT" --out "$RUN/eval"
} 2>&1 | tee "$OUT/log"
last=$(ls "$RUN/samples" | tail -1)
tar czf "$OUT/shapes-base.tar.gz" -C "$RUN" model eval "samples/$last" recipe.toml losses.jsonl
cp "$RUN/eval/shapes_t2i.md" "$OUT/"
