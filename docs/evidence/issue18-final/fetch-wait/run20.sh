#!/usr/bin/env bash
# D-061, a third setting: 20 ms, paced twice and idle, after run.sh.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=docs/evidence/issue18-final/fetch-wait
export RADSTREAM_COMPUTE_THREADS=1
for i in 1 2; do
  echo "=== paced-wait20-$i start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
  RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=20 .venv/bin/radstream bench --images 40 --rate 2 --json-out $OUT/paced-wait20-$i.json > $OUT/paced-wait20-$i.out 2>&1
  echo "=== paced-wait20-$i rc=$? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
done
RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=20 .venv/bin/python $OUT/idle_cpu.py >> $OUT/idle_cpu.txt 2>> $OUT/idle_cpu.err
echo ALLDONE20 >> $OUT/runs.log
