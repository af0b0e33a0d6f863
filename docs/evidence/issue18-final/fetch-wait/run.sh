#!/usr/bin/env bash
# D-061: the embedded stack's default fetch wait (10 ms) against the client default (50 ms),
# alternating: paced and burst, then the broker's CPU while the stack sits idle for 30 s.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=docs/evidence/issue18-final/fetch-wait
export RADSTREAM_COMPUTE_THREADS=1
run() {
  local name=$1; shift
  echo "=== $name start $(date -u +%T) $(git rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
  .venv/bin/radstream bench "$@" --json-out $OUT/$name.json > $OUT/$name.out 2>&1
  echo "=== $name rc=$? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
}
for i in 1 2; do
  RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=50 run paced-wait50-$i --images 40 --rate 2
  run paced-default-$i --images 40 --rate 2
done
RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=50 run burst-wait50-1 --images 60
run burst-default-1 --images 60
for wait in 50 10; do
  RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=$wait .venv/bin/python $OUT/idle_cpu.py >> $OUT/idle_cpu.txt 2>> $OUT/idle_cpu.err
done
echo ALLDONE >> $OUT/runs.log
