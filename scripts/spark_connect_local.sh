#!/usr/bin/env bash
# Start a Spark Connect server on this machine (local[2], port 15002) from the pip pyspark package, to try
# `SEGMENTLENS_SPARK_MASTER=sc://localhost:15002` without a cluster (it listens on 127.0.0.1 only; 2 shuffle
# partitions, one per core of local[2], not Spark's 200: a small table's group-bys are then 2 tasks, not 200).
# JVM: HotSpot leaves Spark's generated methods above 8 KB interpreted unless -XX:-DontCompileHugeMethods
# (as core/engines/spark_engine.py sets for local sessions); C1 only (TieredStopAtLevel=1) compiles the many
# short-lived query classes of a Connect session quickly instead of spending the cores on C2. Needs Java 17+ and the Connect client
# (pip install "pyspark[connect]==4.1.4"). Stop it with: kill "$(cat "${TMPDIR:-/tmp}/segmentlens-connect.pid")"
# PYTHON: the interpreter whose pyspark to use (default: python on PATH); the tests pass their own.
set -euo pipefail
PORT=${1:-15002}
PYTHON=${PYTHON:-python}
SPARK_HOME=$("$PYTHON" -c "import os, pyspark; print(os.path.dirname(pyspark.__file__))")
JAR=$(ls "$SPARK_HOME"/jars/spark-connect_*.jar | head -1)
LOG=${TMPDIR:-/tmp}/segmentlens-connect.log
SPARK_HOME="$SPARK_HOME" nohup "$SPARK_HOME/bin/spark-submit" --master "local[2]" \
  --class org.apache.spark.sql.connect.service.SparkConnectServer \
  --conf spark.connect.grpc.binding.address=127.0.0.1 --conf spark.connect.grpc.binding.port="$PORT" \
  --conf spark.driver.bindAddress=127.0.0.1 --conf spark.driver.host=127.0.0.1 \
  --driver-memory "${DRIVER_MEMORY:-1g}" \
  --driver-java-options "-XX:-DontCompileHugeMethods -XX:TieredStopAtLevel=1 -XX:+UseSerialGC" \
  --conf spark.sql.shuffle.partitions="${SHUFFLE_PARTITIONS:-2}" --conf spark.ui.enabled=false \
  --conf spark.sql.session.timeZone=UTC "$JAR" >"$LOG" 2>&1 &
echo $! > "${TMPDIR:-/tmp}/segmentlens-connect.pid"
WAIT=${WAIT:-120}
for _ in $(seq "$WAIT"); do
  if grep -q "Spark Connect server started" "$LOG"; then echo "Spark Connect on sc://localhost:$PORT (log: $LOG)"; exit 0; fi
  sleep 1
done
echo "Spark Connect did not start within $WAIT s; see $LOG" >&2; exit 1
