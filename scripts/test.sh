#!/usr/bin/env bash
# Runs the test suite against real parts. The tests start what they need on free loopback ports:
# a Redis server (KMOP_TEST_REDIS_URL names a running one instead), moto's S3 server
# (KMOP_TEST_S3_ENDPOINT), the test PKI's services; LibreOffice, poppler's pdfsig and SoftHSM2
# come from the system (scripts/setup.sh).
#
# The order is random (pytest-randomly); the seed is printed at the end of the run. Replay an
# order with `-p randomly --randomly-seed=N`; `-p no:randomly` runs the files in order.
#   scripts/test.sh -m "not slow"     the quick run before a commit (a few minutes)
#   scripts/test.sh                   everything, as CI runs it (about 15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
