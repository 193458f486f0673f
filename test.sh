#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the whole pytest suite on the CPU,
# spread over TEST_WORKERS pytest-xdist workers (default 2), one thread each.
#   ./test.sh                 all tests (real-data tests skip unless FER_REAL_DATA is set)
#   FER_REAL_DATA=../shared/datasets ./test.sh
#   TEST_WORKERS=0 ./test.sh -k prune     one process (what -k/-x debugging usually wants)
set -euo pipefail
cd "$(dirname "$0")"
source ./setup_env.sh
set +e
workers=${TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
  .venv/bin/python -m pytest "$@"
else
  .venv/bin/python -m pytest -n "$workers" "$@"
fi
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
exit $rc
