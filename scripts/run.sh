#!/usr/bin/env bash
# Set up and start the dashboard + API: `bash scripts/run.sh` -> http://127.0.0.1:8050 (HOST/PORT override).
# With no model yet it trains one on $SEGMENTLENS_DATA, else data/marketing_campaign.csv, else the sample.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
exec "$PY" app.py
