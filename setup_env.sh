#!/usr/bin/env bash
# Create .venv (if missing) and install the requirements into it. Sourced by run.sh and test.sh.
# PYTHON picks the interpreter (default: python3); VENV the folder (default: .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements-dev.txt
  touch "$stamp"
fi
