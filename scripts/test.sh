#!/usr/bin/env bash
# Runs the test suite against real parts: Redis (started on 127.0.0.1:6379 if not running),
# LibreOffice, poppler's pdfsig, and moto's S3 server (started by the tests as a separate process).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/kmop-test-redis.log"
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

exec .venv/bin/python -m pytest "$@"
