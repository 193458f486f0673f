#!/usr/bin/env bash
# The prepared GPU measurement, resumable: rerun the same command to continue a cut-short run.
#
#   bench/gpu_run.sh FER_SOURCE OUT_DIR
#
# slim_protocol.sh at full width with the fast recipe, for VGG19 and Resnet18: each parent
# with sparsity (--s auto), pruned at 0.5 and 0.7 and fine-tuned with distillation, plus each
# parent without sparsity; every epoch scored on both test splits (--test-curves, cheap on a
# GPU) so the test-selected comparison column exists. Before that, bench/bench_fer.py times an
# epoch and the 10-crop evaluation. Knobs: those of slim_protocol.sh (defaults below), SKIP_BENCH=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:?usage: bench/gpu_run.sh FER_SOURCE OUT_DIR}
OUT=${2:?usage: bench/gpu_run.sh FER_SOURCE OUT_DIR}
export ARCHS=${ARCHS:-VGG19 Resnet18} WIDTH=${WIDTH:-1.0} RECIPE=${RECIPE:-fast} EPOCHS=${EPOCHS:-40}
export FT_EPOCHS=${FT_EPOCHS:-15} EVAL_EVERY=${EVAL_EVERY:-1} EXTRA=${EXTRA:---channels-last --test-curves}
if [ -z "${SKIP_BENCH:-}" ] && [ ! -f "$OUT/bench_fer.md" ]; then
  ./slim_protocol.sh "$SRC" "$OUT" --data-only  # bench_fer needs the HDF5 before the protocol makes it
  echo "== bench_fer (epoch and evaluation timing)" | tee -a "$OUT/progress.log"
  ${PYTHON:-python3} bench/bench_fer.py --csv /nonexistent --data "$OUT/data.h5" > "$OUT/bench_fer.md.tmp"
  mv "$OUT/bench_fer.md.tmp" "$OUT/bench_fer.md"
fi
exec ./slim_protocol.sh "$SRC" "$OUT"
