#!/usr/bin/env bash
# The main job: set up .venv, then preprocess -> train a parent with sparsity -> prune ->
# distilled fine-tuning (-> on a CPU also the no-sparsity baseline) -> table and figures, all
# through slim_protocol.sh, the launcher of protocol.py (resumable: run it again to continue). Before training it prints how
# long the run will take on this machine, measured on the spot (protocol.py --estimate).
#   FER2013 present + a GPU:  VGG19 full width, the published 250-epoch recipe with sparsity,
#                             pruned at 0.5 (no baseline run)
#   FER2013 present, no GPU:  the CPU-scale protocol: VGG19 at width 0.25, --recipe cpu-lean;
#                             parents with and without sparsity, pruned at 0.5 and 0.7
#   no FER2013:               the SYNTHETIC drawn-face set with a short schedule (minutes)
# Outputs: checkpoints/<protocol>/ (table.md, run folders, figures). Knobs: see slim_protocol.sh.
set -euo pipefail
cd "$(dirname "$0")"
source ./setup_env.sh
export PYTHON=$PWD/.venv/bin/python
# any form of FER2013 in data/ (preprocess_fer2013.py --locate says which it takes and what it
# looked for); a file there that looks like FER2013 but cannot be read stops the run here
# instead of falling back to the synthetic set
set +e
found=$($PYTHON preprocess_fer2013.py --locate)
rc=$?
set -e
if [ $rc -ge 2 ]; then exit $rc; fi
if [ $rc -eq 0 ]; then
  read -r kind src <<<"$found"
  h5=data/data.h5; suffix=""
  if [ "$kind" = images ]; then
    # the image-folder layout has no PublicTest/PrivateTest: its numbers go to their own folders
    h5=data/data_folders.h5; suffix=_folders
    echo "== FER2013 found as image folders at $src: results go to checkpoints/*$suffix (not comparable"
    echo "   with FER2013's PublicTest/PrivateTest figures)"
    [ -f $h5 ] && [ $h5 -nt "$src" ] || $PYTHON preprocess_fer2013.py --images "$src" --out $h5
  else
    echo "== FER2013 found at $src"
    [ -f $h5 ] && [ $h5 -nt "$src" ] || $PYTHON preprocess_fer2013.py --csv "$src" --out $h5
  fi
  if $PYTHON -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "== GPU found: VGG19 at full width, the published recipe (250 epochs) with sparsity, pruned at 0.5"
    export WIDTH=${WIDTH:-1.0} RECIPE=${RECIPE:-published} PERCENTS=${PERCENTS:-0.5} FT_EPOCHS=${FT_EPOCHS:-60}
    export FT_LR=${FT_LR:-0.01} EVAL_EVERY=${EVAL_EVERY:-1} BASELINE=${BASELINE:-0} EXTRA=${EXTRA:---channels-last}
    out=checkpoints/gpu_published$suffix
  else
    echo "== no GPU: running the CPU-scale protocol (VGG19 at width 0.25, --recipe cpu-lean; parents with and"
    echo "   without sparsity, pruned at 0.5 and 0.7 and fine-tuned). With a GPU this script runs the full"
    echo "   published recipe instead."
    out=checkpoints/cpu_protocol$suffix
  fi
  ./slim_protocol.sh $h5 "$out" --estimate || true   # the same settings the run gets, timed here
  exec ./slim_protocol.sh $h5 "$out"
fi
echo "== no FER2013 in data/: running on SYNTHETIC drawn faces with a short CPU schedule."
echo "   (for the real thing, download FER2013 from Kaggle and put it in data/, in any of the forms above)"
[ -f data/synthetic6k.h5 ] || $PYTHON preprocess_fer2013.py --synthetic 6000 --out data/synthetic6k.h5
export RECIPE=${RECIPE:-fast} EPOCHS=${EPOCHS:-8} PERCENTS=${PERCENTS:-0.5} FT_EPOCHS=${FT_EPOCHS:-4}
export BASELINE=${BASELINE:-0} EVAL_EVERY=${EVAL_EVERY:-1}
exec ./slim_protocol.sh data/synthetic6k.h5 checkpoints/synthetic_protocol
