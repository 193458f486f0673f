#!/usr/bin/env bash
# The slimming protocol with environment knobs: a launcher of protocol.py, which documents the
# stages, the run folders, the table and every default. Resumable: rerun the same command.
#
#   ./slim_protocol.sh FER_SOURCE OUT_DIR [--data-only | --dry-run | --estimate]
#   SEED=1 ./slim_protocol.sh data/data.h5 runs/seed1      (one folder per seed; bench/seed_table.py)
#
# Knobs, each passed on only when set (unset: protocol.py's default):
#   ARCHS WIDTH RECIPE EPOCHS SEED BASELINE(0/1) PERCENTS("0.5 0.7"; empty = none) MACS_TARGETS ROUND_TO
#   SR_COST S_ZERO_AT FT_EPOCHS FT_LR KD(0/1) EVAL_EVERY EVAL_BS EXTRA(more training flags) PLOTS(0/1)
#   LATENCY_ROUNDS PYTHON(python3)
# The recorded threshold rows of BENCHMARKS.md used ROUND_TO=1 (the default was 1 until 2026-12-06).
set -euo pipefail
cd "$(dirname "$0")"
SRC=${1:?usage: slim_protocol.sh FER_SOURCE OUT_DIR}
OUT=${2:?usage: slim_protocol.sh FER_SOURCE OUT_DIR}
flags=()
opt() { [ -n "${2:-}" ] && flags+=("$1" "$2"); return 0; }
opt --width "${WIDTH:-}"; opt --recipe "${RECIPE:-}"; opt --epochs "${EPOCHS:-}"; opt --seed "${SEED:-}"
opt --round-to "${ROUND_TO:-}"; opt --sr-cost "${SR_COST:-}"; opt --s-zero-at "${S_ZERO_AT:-}"
opt --ft-epochs "${FT_EPOCHS:-}"; opt --ft-lr "${FT_LR:-}"; opt --eval-every "${EVAL_EVERY:-}"
opt --eval-bs "${EVAL_BS:-}"; opt --latency-rounds "${LATENCY_ROUNDS:-}"
[ -n "${ARCHS:-}" ] && flags+=(--archs $ARCHS)
[ -n "${EXTRA:-}" ] && flags+=("--extra=$EXTRA")
if [ -n "${PERCENTS+set}" ] || [ -n "${MACS_TARGETS:-}" ]; then
  rules=()
  if [ -n "${PERCENTS+set}" ]; then for p in $PERCENTS; do rules+=("percent:$p"); done; else rules+=(default); fi
  for t in ${MACS_TARGETS:-}; do rules+=("macs:$t"); done
  flags+=(--prune "${rules[@]}")
fi
[ "${BASELINE:-1}" = 1 ] || flags+=(--no-baseline)
[ "${KD:-1}" = 1 ] || flags+=(--no-kd)
[ "${PLOTS:-1}" = 1 ] || flags+=(--no-plots)
exec "${PYTHON:-python3}" protocol.py "$SRC" "$OUT" "${flags[@]}" "${@:3}"
