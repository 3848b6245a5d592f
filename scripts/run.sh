#!/usr/bin/env bash
# Set up and start the dashboard + API: `bash scripts/run.sh` -> http://127.0.0.1:8050 (HOST/PORT override).
# With no model yet it trains one on $SEGMENTLENS_DATA, else data/marketing_campaign.csv, else the sample.
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
echo "Installing the requirements into $("$PYTHON" -c 'import sys; print(sys.prefix)') ..."
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements.txt
exec "$PYTHON" app.py
