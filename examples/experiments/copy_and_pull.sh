#!/usr/bin/env bash
# The copy warm-up and the pull (issue #19, decision 4), on the shipped base, one torch thread.
#
# 1. Copy: recipes/shapes.toml with identity-only steps (objective.identity_warmup_steps above train.steps), run in
#    segments of SEG steps; after each, `byg eval shapes-edit` on the colour edits with its identity row (does the
#    editor copy a held-out source it is asked to keep?).
# 2. Pull: from the copier's last checkpoint, ByG steps (the recipe's objective) in segments of 50 under each
#    setting in PULL, the same evaluation after each segment: copy rate and edit success against ByG steps.
# Settings (environment): COPY_STEPS (3000), SEG (500), LR (the copy's lr, 2e-3), PER (edits a type, 24), PULL_STEPS
# (200), OUT (runs/exp_copy_pull), SET (more recipe settings for every run, space-separated key=value, e.g.
# 'model.path="runs/base4"' to keep a base fixed while a new stage is shipped), PULL (the pull settings, objective
# keys, space-separated), PULL_LR (the pulls' lr, default LR), PRIOR ("base": the frozen base's prior, Algorithm 1;
# "exact": the shapes world's exact one, examples/experiments/byg_with_exact_prior.py; its rows are labelled
# pull-exact-...). Results: OUT/copy.tsv and OUT/pull.tsv (one row a segment).
set -euo pipefail
cd "$(dirname "$0")/../.."
COPY_STEPS=${COPY_STEPS:-3000} SEG=${SEG:-500} LR=${LR:-2e-3} PER=${PER:-24} PULL_STEPS=${PULL_STEPS:-200}
OUT=${OUT:-runs/exp_copy_pull} PULL_LR=${PULL_LR:-$LR} PRIOR=${PRIOR:-base}
BYG=${BYG:-byg}
mkdir -p "$OUT"
settings=(train.threads=1 train.sample_every=0 'eval.after="none"' train.checkpoint_every=50)
for setting in ${SET:-}; do settings+=("$setting"); done
common=(); for setting in "${settings[@]}"; do common+=(--set "$setting"); done
case "$PRIOR" in base) tag="" ;; exact) tag="exact-" ;; *) echo "PRIOR must be base or exact, not $PRIOR" >&2; exit 2 ;; esac
score() {  # RUN LABEL STEP TSV: colour edits + identity row, one TSV row
  $BYG eval shapes-edit --run "$1" --edit-type color --per-type "$PER" --steps 12 -o "$1/eval-$3" > /dev/null
  python3 - "$1/eval-$3/shapes_edit.json" "$2" "$3" >> "$4" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rows = r["summary"]["per_type"]
colour, ident = rows["color"], rows["identity"]
print("\t".join([sys.argv[2], sys.argv[3], f"{colour['success']:.3f}", f"{colour['preservation']:.3f}",
                 f"{ident['success']:.3f}"]))
PY
}
copy="$OUT/copy"
if [ ! -f "$OUT/copy.tsv" ]; then printf "run\tstep\tcolour_success\tcolour_preservation\tcopies\n" > "$OUT/copy.tsv"; fi
done_steps=$(tail -n +2 "$OUT/copy.tsv" | awk -F'\t' '$1=="copy"{s=$2} END{print s+0}')
while [ "$done_steps" -lt "$COPY_STEPS" ]; do
  resume=(); [ -d "$copy/checkpoints" ] && resume=(--resume)
  $BYG train recipes/shapes.toml --run-dir "$copy" "${resume[@]}" "${common[@]}" --set train.steps=$COPY_STEPS \
    --set objective.identity_warmup_steps=1000000 --set train.lr=$LR --max-steps "$SEG" > "$OUT/copy.log" 2>&1
  done_steps=$((done_steps + SEG))
  score "$copy" copy "$done_steps" "$OUT/copy.tsv"
  tail -1 "$OUT/copy.tsv"
done
if [ ! -f "$OUT/pull.tsv" ]; then printf "run\tstep\tcolour_success\tcolour_preservation\tcopies\n" > "$OUT/pull.tsv"; fi
pull() {  # RUN SETTING TOTAL_STEPS: 50 more ByG steps from RUN's last checkpoint, under PRIOR
  local args=(objective.$2 train.lr=$PULL_LR train.steps=$3 objective.identity_warmup_steps=$COPY_STEPS)
  if [ "$PRIOR" = exact ]; then
    RESUME=1 MAX_STEPS=50 python3 examples/experiments/byg_with_exact_prior.py "$1/recipe.toml" "$1" \
      "${settings[@]}" "${args[@]}"
  else
    local sets=(); for a in "${args[@]}"; do sets+=(--set "$a"); done
    $BYG train recipes/shapes.toml --run-dir "$1" --resume "${common[@]}" "${sets[@]}" --max-steps 50
  fi
}
for setting in ${PULL:-"lambda_id=0.2" "lambda_id=1.0" "lambda_prior=0.25"}; do
  run="$OUT/pull-$tag$setting"
  if [ ! -d "$run" ]; then
    mkdir -p "$run/checkpoints"
    last=$(ls "$copy/checkpoints" | tail -1)
    cp -r "$copy/checkpoints/$last" "$run/checkpoints/"
    cp "$copy/recipe.toml" "$run/"
  fi
  for ((k = 50; k <= PULL_STEPS; k += 50)); do
    grep -q "^pull-$tag$setting	$k	" "$OUT/pull.tsv" && continue
    pull "$run" "$setting" $((COPY_STEPS + PULL_STEPS)) > "$OUT/pull.log" 2>&1
    score "$run" "pull-$tag$setting" "$k" "$OUT/pull.tsv"
    tail -1 "$OUT/pull.tsv"
  done
done
