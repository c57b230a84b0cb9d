#!/usr/bin/env bash
# Sets up kmop-docs on a Debian machine with Python 3.11: system packages, then a virtualenv in .venv.
# Idempotent; run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libreoffice-writer-nogui python3-uno poppler-utils fonts-dejavu-core fonts-liberation2 fonts-noto-core fonts-noto-cjk
              redis-server softhsm2 libnss3-tools python3-venv tzdata postgresql)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The dossier index's tests: PostgreSQL on 127.0.0.1 that lets local users in (trust; a test
# machine's cluster only) and a database `test`.
if [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql)" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  pg_version="$(ls /etc/postgresql | sort -V | tail -1)"
  hba="/etc/postgresql/$pg_version/main/pg_hba.conf"
  $SUDO grep -q '^host all all 127.0.0.1/32 trust' "$hba" || $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
  else
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test"
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
echo "kmop-docs set up: .venv/bin/kmop"
