#!/usr/bin/env bash
# Set up everything the tests need, then run them: `bash scripts/test.sh [pytest args]`.
# Installs into a virtualenv at ./venv (created on first use); set PYTHON=... to use another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  [ -x venv/bin/python ] || python3 -m venv venv
  PYTHON=venv/bin/python
fi
"$PYTHON" - <<'PY' || exit 1
import sys
if sys.version_info < (3, 11):
    sys.exit(f"SegmentLens needs Python 3.11 or newer; {sys.executable} is {sys.version.split()[0]}")
PY
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  # Browser tests drive Debian's Chromium through its matching chromedriver.
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
fi
exec "$PYTHON" -m pytest "$@"
