#!/usr/bin/env bash
# The GPU measurement that fits one short lease (one GPU, ~9 minutes), time-boxed.
#
#   bench/gpu_lease.sh FER_SOURCE CK_H5 WORK_DIR RESULTS_DIR [SECONDS]
#
# bench/gpu_run.sh is the complete full-width protocol (40 epochs, every epoch scored, ResNet18
# slimmed too; about 15 minutes of one H200 by the epoch times measured with this script, more
# than a lease holds); this is its cut. Every run is at full width on the real data, with the CPU
# protocol's recipe (cpu-lean: 30 epochs of one-cycle, PublicTest selects among the last 4) so it
# pairs with the width-0.25 rows. Lanes, each a process of its own on the one GPU:
#   per seed in SEEDS (default 0; seed 0 in WORK_DIR itself, seed S in WORK_DIR/seed<S>):
#     VGG19      VGG19 without sparsity (the baseline)                -> .../VGG19
#     VGG19_sr   slim_protocol.sh: VGG19 with sparsity, pruned at 0.5 and to 0.5 of the MACs
#                (channels rounded to 8), each fine-tuned 10 epochs distilling from the parent
#   once, if named in OTHER_LANES (default "Resnet18 CK"; first seed):
#     Resnet18   ResNet18 without sparsity                            -> WORK_DIR/Resnet18
#     CK         CK+ 10 folds, VGG19, subject and legacy folds        -> WORK_DIR/CK+_VGG19/<protocol>
#     Published  VGG19, the published 250-epoch recipe, seed 0, scored every PUB_EVAL_EVERY (10)
#                epochs with --test-curves (so the test-selected figure shows beside the honest
#                one), resumable (--resume)                            -> WORK_DIR/VGG19_published
# The accuracy study (issue 26) runs the published lane first and alone whenever a GPU is lent,
# about 600 s of an H200 at 2.4 s per epoch plus its evaluations: more than one device command may
# run (600 s), so two calls, the second at once while the machine is still warm. WORK_DIR in the
# ignored .devwork/ stays on a warm machine between calls (data.h5 is not made twice, the run resumes
# from its last.pth); a machine that went back starts over, since last.pth is too big to come home:
#   SEEDS= OTHER_LANES=Published SKIP_BENCH=1 TAIL=30 \
#     bench/gpu_lease.sh .devdata/fer2013.med.xz - .devwork/pub "$OUT" 570     # timeout_s 590
# then the same with SECONDS = what `status` leaves minus about 60 s. A 15-minute lease (its start
# included) may still end short of 250 epochs: the run then stays resumable only on that machine,
# and metrics.csv (every scored epoch, test curves too) comes home in results.tar.gz.
# Measured on an H200 (BENCHMARKS.md): the default lanes in 302 s, SEEDS="1 2" OTHER_LANES= in ~300 s.
# At SECONDS (default 540) minus TAIL (75) after the start any lane still running is stopped (a
# stopped run keeps metrics.csv and last.pth; a rerun with --resume continues it); then
# bench/protocol_table.py and bench/bench_fer.py (an epoch and the 10-crop evaluation of each
# model, timed alone on the GPU) run in what is left. RESULTS_DIR gets results.tar.gz (every
# json/csv/md/log of WORK_DIR, no weights, no data), refreshed every 30 s so a lease cut short
# still returns what finished, plus gpu.log (nvidia-smi samples every 10 s).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then echo "usage: bench/gpu_lease.sh FER_SOURCE CK_H5 WORK_DIR RESULTS_DIR [SECONDS]" >&2; exit 2; fi
SRC=$1; CK=$2; WORK=$3; RES=$4; BUDGET=${5:-540}
PY=${PYTHON:-python3}
# knobs for a smoke run on a CPU (defaults: the lease); SKIP_BENCH=1 leaves out bench_fer.py
SEEDS=${SEEDS:-0}; OTHER_LANES=${OTHER_LANES-Resnet18 CK}; read -r -a seeds <<< "$SEEDS"
WIDTH=${WIDTH:-1.0}; RECIPE=${RECIPE:-cpu-lean}; FT_EPOCHS=${FT_EPOCHS:-10}; TAIL=${TAIL:-75}
EXTRA=${EXTRA:---channels-last --test-curves}; read -r -a extra <<< "$EXTRA"
read -r -a fer_more <<< "${FER_MORE:-}"; read -r -a ck_more <<< "${CK_MORE:-}"
start=$(date +%s); deadline=$((start + BUDGET - TAIL))
mkdir -p "$WORK" "$RES"
# 16 cores, five processes: a few threads each; no progress bars in the logs
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
say() { echo "== +$(( $(date +%s) - start ))s $*" | tee -a "$WORK/lease.log"; }
snapshot() {
  (cd "$WORK" && find . -type f \( -name '*.json' -o -name '*.csv' -o -name '*.md' -o -name '*.log' \
     -o -name '*.txt' \) -print0 | tar czf "$RES/.results.tar.gz" --null -T -) && mv "$RES/.results.tar.gz" "$RES/results.tar.gz"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $PY -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0], 'cuda',
torch.cuda.is_available() and torch.cuda.get_device_name())"; nproc; } | tee "$WORK/machine.txt"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 10 > "$RES/gpu.log" 2>&1 &
  smi=$!
fi

declare -A pid
lane() {  # lane NAME CMD...: its own process group, so the deadline stops all it started
  local name=$1; shift
  setsid "$@" > "$WORK/lane_$name.log" 2>&1 &
  pid[$name]=$!
  say "lane $name started: $*"
}
has() { [[ " $OTHER_LANES " == *" $1 "* ]]; }
# CK+ needs nothing from the FER2013 preprocessing: it starts at once
if has CK; then
  for protocol in subject legacy; do
    lane "CK_$protocol" $PY k_fold_train.py --model VGG19 --width "$WIDTH" --protocol $protocol --data "$CK" --resume \
      --out "$WORK/CK+_VGG19/$protocol" "${extra[@]}" "${ck_more[@]}"
  done
fi

say "FER2013: unpack and preprocess $SRC"
if [[ "$SRC" != *.h5 ]] && ! ./slim_protocol.sh "$SRC" "$WORK" --data-only > "$WORK/preprocess.log" 2>&1; then
  say "preprocessing failed:"; tail -n 5 "$WORK/preprocess.log"
else
  data="$WORK/data.h5"; [[ "$SRC" == *.h5 ]] && data="$SRC"
  fer=(--data "$data" --width "$WIDTH" --recipe "$RECIPE" --eval-every 2 --resume "${extra[@]}" "${fer_more[@]}")
  for seed in "${seeds[@]}"; do
    dir=$WORK; tag=""; [ "$seed" = 0 ] || { dir=$WORK/seed$seed; tag=_seed$seed; }
    lane "VGG19$tag" $PY mainpro_FER.py --model VGG19 "${fer[@]}" --seed "$seed" --out "$dir/VGG19"
    lane "VGG19_sr$tag" env ARCHS=VGG19 WIDTH="$WIDTH" RECIPE="$RECIPE" SEED="$seed" BASELINE=0 PERCENTS=0.5 \
      MACS_TARGETS=0.5 ROUND_TO=8 FT_EPOCHS="$FT_EPOCHS" PLOTS=0 LATENCY_ROUNDS=1 EXTRA="$EXTRA ${FER_MORE:-}" \
      PYTHON="$PY" ./slim_protocol.sh "$data" "$dir"
  done
  has Resnet18 && lane Resnet18 $PY mainpro_FER.py --model Resnet18 "${fer[@]}" --seed "${seeds[0]:-0}" --out "$WORK/Resnet18"
  has Published && lane Published $PY mainpro_FER.py --model VGG19 --data "$data" --width "$WIDTH" --recipe published \
    --eval-every "${PUB_EVAL_EVERY:-10}" --resume --seed 0 "${extra[@]}" --test-curves "${fer_more[@]}" \
    --out "$WORK/VGG19_published"
fi

last_snap=0
while :; do
  alive=(); for n in "${!pid[@]}"; do kill -0 "${pid[$n]}" 2> /dev/null && alive+=("$n"); done
  [ ${#alive[@]} -eq 0 ] && break
  now=$(date +%s)
  if [ "$now" -ge "$deadline" ]; then
    say "deadline: stopping ${alive[*]}"
    for n in "${alive[@]}"; do kill -TERM -- "-${pid[$n]}" 2> /dev/null; done
    sleep 5
    for n in "${alive[@]}"; do kill -KILL -- "-${pid[$n]}" 2> /dev/null; done
    break
  fi
  [ $((now - last_snap)) -ge 30 ] && { snapshot; last_snap=$now; }
  sleep 2
done
for n in "${!pid[@]}"; do
  wait "${pid[$n]}" 2> /dev/null; rc=$?
  say "lane $n: exit $rc; last lines:"; tail -n 3 "$WORK/lane_$n.log" | tee -a "$WORK/lease.log"
done
snapshot

left() { echo $((start + BUDGET - $(date +%s))); }
if [ "$(left)" -gt 20 ] && [ -n "${data:-}" ]; then
  say "protocol table (CPU latency column: this machine's CPU, 1 round)"
  timeout $(( $(left) / 3 )) $PY bench/protocol_table.py "$WORK" --rounds 1 > "$WORK/table.md" 2>&1
  if [ -z "${SKIP_BENCH:-}" ]; then
    say "bench_fer: one epoch and both test splits per model, alone on the GPU"
    timeout $(( $(left) - 10 )) $PY bench/bench_fer.py --csv /nonexistent --data "$data" > "$WORK/bench_fer.md" 2>&1
  fi
fi
say "done"
[ -n "${smi:-}" ] && kill "$smi" 2> /dev/null
snapshot
cat "$WORK/table.md" "$WORK/bench_fer.md" 2> /dev/null | tail -n 40
exit 0
