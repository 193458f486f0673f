#!/usr/bin/env bash
# One prepared GPU measurement, resumable: rerun the same command to continue a cut-short run.
#
#   bench/gpu_run.sh FER_SOURCE OUT_DIR
#
# FER_SOURCE: fer2013.csv, fer2013.csv.gz, fer2013.tar.gz, or the packed fer2013.med.xz (then
# PACK_TOOL names fer2013_pack.py; default: beside it or in ../tools). Stages, each skipped when done:
#   1. preprocess -> OUT_DIR/data.h5          2. bench_fer.py (s/epoch, 10-crop eval time)
#   3. VGG19, fast recipe, --sr               4. prune at 0.5 and 0.7, fine-tune each
#   5. Resnet18, fast recipe                  6. OUT_DIR/table.md (bench/gpu_table.py)
# Knobs (environment): EPOCHS (40), FT_EPOCHS (15), RESNET_EPOCHS (30), WIDTH (1.0; e.g. 0.125 for a
# CPU smoke run), SEED (0), PYTHON (python3), SKIP_BENCH=1, SKIP_RESNET=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:?usage: bench/gpu_run.sh FER_SOURCE OUT_DIR}
OUT=${2:?usage: bench/gpu_run.sh FER_SOURCE OUT_DIR}
PY=${PYTHON:-python3}
EPOCHS=${EPOCHS:-40}; FT_EPOCHS=${FT_EPOCHS:-15}; RESNET_EPOCHS=${RESNET_EPOCHS:-30}
WIDTH=${WIDTH:-1.0}; SEED=${SEED:-0}
mkdir -p "$OUT"
log() { echo "== $(date +%H:%M:%S) $*" | tee -a "$OUT/progress.log"; }
fast=(--recipe fast --width "$WIDTH" --seed "$SEED" --channels-last --data "$OUT/data.h5" --resume)

if [ ! -f "$OUT/data.h5" ]; then
  if [[ "$SRC" == *.med.xz ]]; then
    tool=${PACK_TOOL:-$(dirname "$SRC")/fer2013_pack.py}
    [ -f "$tool" ] || tool=$(dirname "$SRC")/../tools/fer2013_pack.py
    log "unpack $SRC"
    $PY "$tool" unpack "$SRC" "$OUT/fer2013.csv"
    SRC="$OUT/fer2013.csv"
  fi
  log "preprocess $SRC"
  $PY preprocess_fer2013.py --csv "$SRC" --out "$OUT/data.h5" | tee -a "$OUT/progress.log"
  rm -f "$OUT/fer2013.csv"
fi
if [ -z "${SKIP_BENCH:-}" ] && [ ! -f "$OUT/bench_fer.md" ]; then
  log "bench_fer (epoch and evaluation timing)"
  $PY bench/bench_fer.py --csv /nonexistent --data "$OUT/data.h5" > "$OUT/bench_fer.md.tmp" && mv "$OUT/bench_fer.md.tmp" "$OUT/bench_fer.md"
fi
log "VGG19 fast recipe with sparsity, $EPOCHS epochs"
$PY mainpro_FER.py --model VGG19 "${fast[@]}" --epochs "$EPOCHS" --sr --s 1e-4 --out "$OUT/FER2013_VGG19" \
  2>&1 | grep -v "it/s" | tee -a "$OUT/progress.log"
for p in 0.5 0.7; do
  d="$OUT/FER2013_VGG19_pruned$p"
  if [ ! -f "$d/pruned.pth" ]; then
    log "prune at $p"
    $PY prune_vgg.py --percent "$p" --model "$OUT/FER2013_VGG19/best.pth" --save "$d" --data "$OUT/data.h5" \
      | tee -a "$OUT/progress.log"
  fi
  log "fine-tune pruned $p, $FT_EPOCHS epochs"
  $PY fer_vgg_prune.py --model "$d/pruned.pth" --data "$OUT/data.h5" --epochs "$FT_EPOCHS" --channels-last --resume \
    2>&1 | grep -v "it/s" | tee -a "$OUT/progress.log"
done
if [ -z "${SKIP_RESNET:-}" ]; then
  log "Resnet18 fast recipe, $RESNET_EPOCHS epochs"
  $PY mainpro_FER.py --model Resnet18 "${fast[@]}" --epochs "$RESNET_EPOCHS" --out "$OUT/FER2013_Resnet18" \
    2>&1 | grep -v "it/s" | tee -a "$OUT/progress.log"
fi
$PY bench/gpu_table.py "$OUT" | tee "$OUT/table.md"
log "done: $OUT/table.md"
