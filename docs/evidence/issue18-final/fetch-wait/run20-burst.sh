#!/usr/bin/env bash
# D-061: the burst at the embedded default (20 ms) against 50 ms, alternating, after run20.sh.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=docs/evidence/issue18-final/fetch-wait
export RADSTREAM_COMPUTE_THREADS=1
for i in 1 2; do
  for wait in 50 20; do
    echo "=== burst-wait$wait-b$i start $(date -u +%T) $(git rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
    RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=$wait .venv/bin/radstream bench --images 60 --json-out $OUT/burst-wait$wait-b$i.json > $OUT/burst-wait$wait-b$i.out 2>&1
    echo "=== burst-wait$wait-b$i rc=$? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
  done
done
echo ALLDONE-burst20 >> $OUT/runs.log
