#!/usr/bin/env bash
# The main job: set up .venv, then preprocess -> train.
#   with data/fer2013.csv (or .csv.gz / fer2013.tar.gz): the published VGG19 recipe on FER2013
#   without it: the SYNTHETIC drawn-face set with a short CPU-sized schedule, to show the pipeline
# Extra arguments go to mainpro_FER.py (e.g. ./run.sh --recipe fast --model Resnet18).
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
  $PY mainpro_FER.py --model VGG19 --data data/data.h5 "$@"
else
  echo "== data/fer2013.csv not found: running on SYNTHETIC drawn faces with a short CPU schedule."
  echo "   (for the real thing, download FER2013 from Kaggle and put fer2013.csv in data/)"
  $PY preprocess_fer2013.py --synthetic 3000 --out data/synthetic.h5
  $PY mainpro_FER.py --model VGG19 --width 0.25 --data data/synthetic.h5 --recipe fast --epochs 8 \
      --out checkpoints/SYNTHETIC_VGG19 "$@"
fi
