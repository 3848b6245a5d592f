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
# The Spark engine is an optional extra for users; the tests exercise it, so they install it.
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements-spark.txt
APT=()
# Browser tests drive Debian's Chromium through its matching chromedriver.
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || APT+=(chromium chromium-driver)
# Spark runs on a JVM (17 or newer).
command -v java >/dev/null 2>&1 || APT+=(default-jre-headless)
# The PostgreSQL tests start Debian's server themselves (initdb + pg_ctl in a temporary folder).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || APT+=(postgresql)
# The Spark engine reads postgresql:// tables through this JDBC driver (/usr/share/java/postgresql.jar).
[ -f /usr/share/java/postgresql.jar ] || APT+=(libpostgresql-jdbc-java)
# axe-core (the accessibility test's engine) comes from the npm registry, pinned in package-lock.json.
command -v npm >/dev/null 2>&1 || APT+=(npm)
if [ ${#APT[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${APT[@]}"
fi
[ -f node_modules/axe-core/axe.min.js ] || npm ci --no-audit --no-fund --silent
# Two worker processes (pytest-xdist): much of a test's time is spent waiting on a server, Chromium or a JVM,
# which the other worker uses. --dist loadfile keeps a module on one worker (its module fixtures made once;
# tests/conftest.py makes all Spark tests one unit, sharing one JVM, and each accessibility mode a unit of its own);
# --no-loadscope-reorder keeps tests/conftest.py's order (longest modules first). SEGMENTLENS_TEST_WORKERS=0
# runs in one process; a `-n N` among the arguments wins as well.
exec "$PYTHON" -m pytest -n "${SEGMENTLENS_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
