#!/usr/bin/env bash
# Start a Spark Connect server on this machine (local[2], port 15002) from the pip pyspark package, to try
# `SEGMENTLENS_SPARK_MASTER=sc://localhost:15002` without a cluster. Needs Java 17+ and the Connect client
# (pip install "pyspark[connect]==4.1.4"). Stop it with: kill "$(cat "${TMPDIR:-/tmp}/segmentlens-connect.pid")"
set -euo pipefail
PORT=${1:-15002}
SPARK_HOME=$(python -c "import os, pyspark; print(os.path.dirname(pyspark.__file__))")
JAR=$(ls "$SPARK_HOME"/jars/spark-connect_*.jar | head -1)
LOG=${TMPDIR:-/tmp}/segmentlens-connect.log
SPARK_HOME="$SPARK_HOME" nohup "$SPARK_HOME/bin/spark-submit" --master "local[2]" \
  --class org.apache.spark.sql.connect.service.SparkConnectServer \
  --conf spark.connect.grpc.binding.port="$PORT" --conf spark.ui.enabled=false "$JAR" >"$LOG" 2>&1 &
echo $! > "${TMPDIR:-/tmp}/segmentlens-connect.pid"
for _ in $(seq 60); do
  if grep -q "Spark Connect server started" "$LOG"; then echo "Spark Connect on sc://localhost:$PORT (log: $LOG)"; exit 0; fi
  sleep 1
done
echo "Spark Connect did not start within 60 s; see $LOG" >&2; exit 1
