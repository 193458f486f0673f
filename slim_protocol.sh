#!/usr/bin/env bash
# The light-model protocol, resumable: rerun the same command to continue a cut-short run.
#
#   ./slim_protocol.sh FER_SOURCE OUT_DIR [--data-only]
#   SEED=1 ./slim_protocol.sh data/data.h5 runs/seed1      (one folder per seed; bench/seed_table.py)
#
# FER_SOURCE: fer2013.csv, .csv.gz, .tar.gz, an already preprocessed .h5, or the packed
# fer2013.med.xz (then PACK_TOOL names fer2013_pack.py; default: beside it or in ../tools).
# For each architecture in ARCHS, every stage skipped when already done:
#   1. parent trained WITH sparsity (--sr --s auto)          -> OUT_DIR/<ARCH>_sr
#   2. prune it at each of PERCENTS (share of channels, Liu et al.'s global |gamma| threshold) and
#      at each of MACS_TARGETS (share of multiply-adds kept, |gamma| per MAC freed); redone when
#      the parent is newer than pruned.pth
#   3. fine-tune each pruned net, distilling from the parent (KD=1)
#                            -> OUT_DIR/<ARCH>_sr_pruned<P>[r<ROUND_TO>], OUT_DIR/<ARCH>_sr_m<T>[r<ROUND_TO>]
#   4. the same parent WITHOUT sparsity (BASELINE=1), the row the light model must match
#                                                              -> OUT_DIR/<ARCH>
# then OUT_DIR/table.md (bench/protocol_table.py). Honest throughout: PublicTest selects every
# checkpoint, PrivateTest is reported at that epoch.
#
# Knobs (environment; defaults = the CPU-scale protocol; `python estimate_time.py` says how long
# it takes on this machine, BENCHMARKS.md what it took):
#   ARCHS (VGG19)  WIDTH (0.25)  RECIPE (cpu-lean)  EPOCHS (recipe's)  SEED (0)  BASELINE (1)
#   PERCENTS ("0.5 0.7"; empty = none)  MACS_TARGETS ("")  ROUND_TO (1)  SR_COST (uniform; macs -> <ARCH>_srmacs)
#   FT_EPOCHS (10)  FT_LR (0.02)  KD (1)  S_ZERO_AT (0.5)
#   EVAL_EVERY (2)  EVAL_BS (auto)  EXTRA (more training flags, e.g. --channels-last)  PYTHON (python3)
#   PLOTS (1: curves, pruning comparison with the |gamma| histogram, confusion matrices)
#   LATENCY_ROUNDS (5: interleaved latency rounds of table.md)
# A rerun with nothing new to train keeps table.md and the figures as they are.
set -euo pipefail
cd "$(dirname "$0")"
SRC=${1:?usage: slim_protocol.sh FER_SOURCE OUT_DIR}
OUT=${2:?usage: slim_protocol.sh FER_SOURCE OUT_DIR}
PY=${PYTHON:-python3}
ARCHS=${ARCHS:-VGG19}; WIDTH=${WIDTH:-0.25}; RECIPE=${RECIPE:-cpu-lean}; SEED=${SEED:-0}; BASELINE=${BASELINE:-1}
PERCENTS=${PERCENTS-0.5 0.7}; MACS_TARGETS=${MACS_TARGETS:-}; ROUND_TO=${ROUND_TO:-1}; SR_COST=${SR_COST:-uniform}
FT_EPOCHS=${FT_EPOCHS:-10}; FT_LR=${FT_LR:-0.02}; KD=${KD:-1}
S_ZERO_AT=${S_ZERO_AT:-0.5}; EVAL_EVERY=${EVAL_EVERY:-2}; EVAL_BS=${EVAL_BS:-auto}
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$OUT"
log() { echo "== $(date +%H:%M:%S) $*" | tee -a "$OUT/progress.log"; }
run() { "$@" 2>&1 | tee -a "$OUT/progress.log"; }

data="$OUT/data.h5"
if [[ "$SRC" == *.h5 ]]; then
  data="$SRC"
elif [ ! -f "$data" ]; then
  if [[ "$SRC" == *.med.xz ]]; then
    tool=${PACK_TOOL:-$(dirname "$SRC")/fer2013_pack.py}
    [ -f "$tool" ] || tool=$(dirname "$SRC")/../tools/fer2013_pack.py
    log "unpack $SRC"
    $PY "$tool" unpack "$SRC" "$OUT/fer2013.csv"
    SRC="$OUT/fer2013.csv"
  fi
  log "preprocess $SRC"
  run $PY preprocess_fer2013.py --csv "$SRC" --out "$data"
  rm -f "$OUT/fer2013.csv"
fi
[ "${3:-}" = --data-only ] && exit 0

common=(--data "$data" --width "$WIDTH" --recipe "$RECIPE" --seed "$SEED" --eval-every "$EVAL_EVERY"
        --eval-bs "$EVAL_BS" --resume "${extra[@]}")
[ -n "${EPOCHS:-}" ] && common+=(--epochs "$EPOCHS")

for arch in $ARCHS; do
  case "$arch" in VGG*) prune=prune_vgg.py ;; *) prune=prune_resnet.py ;; esac
  parent="$OUT/${arch}_sr"; [ "$SR_COST" = uniform ] || parent="$OUT/${arch}_sr$SR_COST"
  r=""; [ "$ROUND_TO" = 1 ] || r="r$ROUND_TO"
  log "$arch width $WIDTH, recipe $RECIPE, with sparsity (--s auto, zero at $S_ZERO_AT, cost $SR_COST)"
  run $PY mainpro_FER.py --model "$arch" "${common[@]}" --sr --s auto --s-zero-at "$S_ZERO_AT" --sr-cost "$SR_COST" \
    --out "$parent"
  rules=(); for p in $PERCENTS; do rules+=("pruned$p:--percent $p"); done
  for t in $MACS_TARGETS; do rules+=("m$t:--target-macs $t"); done
  for rule in "${rules[@]}"; do
    name=${rule%%:*}; read -r -a how <<< "${rule#*:}"
    d="${parent}_$name$r"
    if [ ! -f "$d/pruned.pth" ] || [ "$parent/best.pth" -nt "$d/pruned.pth" ]; then
      # a new parent makes the old pruned net and its fine-tuning stale
      rm -f "$d/pruned.pth" "$d/best.pth" "$d/last.pth" "$d/metrics.csv" "$d/summary.json"
      log "prune $arch: ${how[*]}, channels rounded to $ROUND_TO"
      run $PY $prune "${how[@]}" --round-to "$ROUND_TO" --checkpoint "$parent/best.pth" --out "$d" --data "$data" \
        --eval-bs "$EVAL_BS"
    fi
    kd=(); [ "$KD" = 1 ] && kd=(--teacher "$parent/best.pth")
    log "fine-tune $arch $name$r, $FT_EPOCHS epochs${kd:+, distilling from the parent}"
    run $PY fer_vgg_prune.py --checkpoint "$d/pruned.pth" --data "$data" --epochs "$FT_EPOCHS" --lr "$FT_LR" \
      --schedule cosine --label-smoothing 0.1 --nesterov --seed "$SEED" --eval-every "$EVAL_EVERY" \
      --eval-bs "$EVAL_BS" --resume "${kd[@]}" "${extra[@]}"
  done
  if [ "$BASELINE" = 1 ]; then
    log "$arch width $WIDTH, recipe $RECIPE, without sparsity (the baseline)"
    run $PY mainpro_FER.py --model "$arch" "${common[@]}" --out "$OUT/${arch}"
  fi
done
# the table (with its latency measurement) and the figures are redone only when a run changed
stale() { [ ! -f "$1" ] || [ -n "$(find "$OUT" -name best.pth -newer "$1" -print -quit)" ]; }
if stale "$OUT/table.md"; then
  $PY bench/protocol_table.py "$OUT" --rounds "${LATENCY_ROUNDS:-5}" > "$OUT/table.md.tmp" && mv "$OUT/table.md.tmp" "$OUT/table.md"
fi
cat "$OUT/table.md"
if [ "${PLOTS:-1}" = 1 ] && stale "$OUT/.figures_done"; then
  log "figures: training curves, pruning comparison with the |gamma| histogram, confusion matrices"
  for arch in $ARCHS; do
    parent="$OUT/${arch}_sr"; [ "$SR_COST" = uniform ] || parent="$OUT/${arch}_sr$SR_COST"
    r=""; [ "$ROUND_TO" = 1 ] || r="r$ROUND_TO"
    pruned=(); for p in $PERCENTS; do pruned+=("${parent}_pruned$p$r"); done
    for t in $MACS_TARGETS; do pruned+=("${parent}_m$t$r"); done
    [ -f "$parent/best.pth" ] || continue
    run $PY plot_curves.py "$parent" "${pruned[@]}"
    [ ${#pruned[@]} -gt 0 ] && run $PY plot_curves.py --prune "${pruned[@]}"
    for d in "$parent" "${pruned[@]:0:1}"; do
      $PY plot_confusion_matrix.py --checkpoint "$d/best.pth" --split PrivateTest --data "$data" --eval-bs "$EVAL_BS" \
        | tail -n 3 | tee -a "$OUT/progress.log"
    done
  done
  touch "$OUT/.figures_done"
fi
log "done: $OUT/table.md"
