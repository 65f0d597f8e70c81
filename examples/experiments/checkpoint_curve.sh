#!/usr/bin/env bash
# The learning curve of a byg run from the checkpoints it kept (issue #19, decision 4: copy rate and edit success
# against ByG steps): `byg eval shapes-edit --checkpoint` on each, colour edits and the identity row.
# Usage: checkpoint_curve.sh RUN [FROM_STEP]. Settings (environment): PER (edits a type, 24), STEPS (sampling
# steps, 12), TYPES (edit types, "color"), EVERY (only checkpoints whose step it divides, 1). One TSV row a
# checkpoint in RUN/curve.tsv; checkpoints already in it are skipped, so a second call after more training adds
# only the new ones.
set -euo pipefail
run=${1:?usage: checkpoint_curve.sh RUN [FROM_STEP]}
from=${2:-0}
PER=${PER:-24} STEPS=${STEPS:-12} TYPES=${TYPES:-color} EVERY=${EVERY:-1}
types=(); for t in $TYPES; do types+=(--edit-type "$t"); done
tsv="$run/curve.tsv"
[ -f "$tsv" ] || printf "step\ttype\tsuccess\tpreservation\n" > "$tsv"
for dir in "$run"/checkpoints/step-*; do
  name=$(basename "$dir"); step=$((10#${name#step-}))
  [ "$step" -lt "$from" ] && continue
  [ $((step % EVERY)) -eq 0 ] || continue
  grep -q "^$step	" "$tsv" && continue
  out="$run/curve/$name"
  byg eval shapes-edit --run "$run" --checkpoint "$name" "${types[@]}" --per-type "$PER" --steps "$STEPS" \
    -o "$out" > /dev/null
  python3 - "$out/shapes_edit.json" "$step" >> "$tsv" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["summary"]["per_type"]
for kind, row in rows.items():
    print("\t".join([sys.argv[2], kind, f"{row['success']:.3f}", f"{row['preservation']:.3f}"]))
PY
  grep "^$step	" "$tsv"
done
