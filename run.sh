#!/usr/bin/env bash
# The main job: set up .venv, then preprocess -> train with sparsity -> prune -> fine-tune -> plots.
#   with data/fer2013.csv (or .csv.gz / fer2013.tar.gz): VGG19, published recipe, on FER2013
#   without it: the SYNTHETIC drawn-face set with a short CPU-sized schedule, to show the pipeline
# Extra arguments go to the training step (e.g. ./run.sh --recipe fast).
set -euo pipefail
cd "$(dirname "$0")"
source ./setup_env.sh
PY=.venv/bin/python
src=""
for f in data/fer2013.csv data/fer2013.csv.gz data/fer2013.tar.gz; do
  if [ -f "$f" ]; then src="$f"; break; fi
done
if [ -n "$src" ]; then
  echo "== FER2013 found at $src"
  [ -f data/data.h5 ] && [ data/data.h5 -nt "$src" ] || $PY preprocess_fer2013.py --csv "$src" --out data/data.h5
  data=data/data.h5; out=checkpoints/FER2013_VGG19
  train=(--model VGG19 --sr --s 1e-4)
  finetune=()
else
  echo "== data/fer2013.csv not found: running on SYNTHETIC drawn faces with a short CPU schedule."
  echo "   (for the real thing, download FER2013 from Kaggle and put fer2013.csv in data/)"
  [ -f data/synthetic6k.h5 ] || $PY preprocess_fer2013.py --synthetic 6000 --out data/synthetic6k.h5
  data=data/synthetic6k.h5; out=checkpoints/SYNTHETIC_VGG19
  train=(--model VGG19 --width 0.25 --recipe fast --epochs 8 --sr --s 1e-3)
  finetune=(--epochs 4)
fi
echo "== 1/3 train with L1 sparsity on BatchNorm scales"
$PY mainpro_FER.py --data "$data" --out "$out" "${train[@]}" "$@"
echo "== 2/3 prune 50% of the channels (network slimming)"
$PY prune_vgg.py --percent 0.5 --model "$out/best.pth" --save "${out}_pruned" --data "$data"
echo "== 3/3 fine-tune the pruned network"
$PY fer_vgg_prune.py --model "${out}_pruned/pruned.pth" --data "$data" "${finetune[@]}"
echo "== plots"
$PY plot_curves.py "$out" "${out}_pruned"
$PY plot_curves.py --prune "${out}_pruned"
$PY plot_confusion_matrix.py --checkpoint "$out/best.pth" --split PrivateTest --data "$data" | tail -n 3
$PY plot_confusion_matrix.py --checkpoint "${out}_pruned/best.pth" --split PrivateTest --data "$data" | tail -n 3
echo "== done: figures and reports are in $out/ and ${out}_pruned/ (curves.png, PrivateTest_confusion.png, ...)"
