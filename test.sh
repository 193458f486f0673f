#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the whole pytest suite on the CPU.
#   ./test.sh                 all tests (real-data tests skip unless FER_REAL_DATA is set)
#   FER_REAL_DATA=../shared/datasets ./test.sh
set -euo pipefail
cd "$(dirname "$0")"
source ./setup_env.sh
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
exit $rc
