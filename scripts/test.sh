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
# The dossier index's tests use PostgreSQL on 127.0.0.1:5432 (trust authentication, a database
# `test`): start the packaged cluster when it is not running, and let local users in.
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_version="$(ls /etc/postgresql | sort -V | tail -1)"
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
fi
exec .venv/bin/python -m pytest "$@"
