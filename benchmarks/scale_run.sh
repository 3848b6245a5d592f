#!/usr/bin/env bash
# Issue 10's benchmarks in one run, on the same synthetic Parquet files (seed 7; the dashboard's own, seed 11):
#   1. the dashboard on a 5M-customer version (first render, cold/warm per page, server RSS; file moved away);
#   2. the numpy engine out of core at 1M, 5M, 10M (fit+score time, peak RSS; the in-memory path at 1M as peer);
#   3. Spark local[2] at 1M, 5M, 10M (prepare, fit, aggregates+sample; rows/s per core).
# Usage: bash benchmarks/scale_run.sh [WORKDIR] [SPARK_SIZES]   (logs and JSON land in WORKDIR; not part of CI)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d -t sl-scale-XXXX)}
SPARK_SIZES=${2:-1,5,10}
mkdir -p "$WORK"
echo "workdir $WORK; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
python benchmarks/bench_dashboard.py --sizes 5000000 --pages /,/profiles,/compare,/explorer,/predict,/stability,/diagnostics \
  --json "$WORK/dashboard.json" 2>&1 | grep -v Warning | tee "$WORK/dashboard.log"
python benchmarks/bench_scale.py --sizes 1,5,10 --repeats 1 --in-memory-max 1 --workdir "$WORK" \
  --json "$WORK/numpy.json" 2>&1 | tee "$WORK/numpy.log"
python benchmarks/bench_spark.py --sizes "$SPARK_SIZES" --workdir "$WORK" --max-seconds 5400 2>&1 | tee "$WORK/spark.log"
echo "done $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)"
