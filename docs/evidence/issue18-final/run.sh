#!/usr/bin/env bash
# Issue 18's headline benches back to back on a quiet machine; output beside this script.
# Usage: docs/evidence/issue18-final/run.sh  (from the repository root, with .venv installed)
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=docs/evidence/issue18-final
BIN=${BIN:-.venv/bin/radstream}
REV=$(git rev-parse --short HEAD)
export RADSTREAM_COMPUTE_THREADS=1
run() {  # name, then bench arguments; RADSTREAM_BACKEND from the caller's environment
  local name=$1; shift
  echo "=== $name start $(date -u +%T) $REV load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
  $BIN bench "$@" --json-out $OUT/$name.json > $OUT/$name.out 2>&1
  echo "=== $name rc=$? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
}
for i in 1 2 3; do
  run burst-auto-$i --images 60
  RADSTREAM_BACKEND=torch run burst-torch-$i --images 60
done
for i in 1 2 3; do run paced-auto-$i --images 40 --rate 2; done
RADSTREAM_BACKEND=torch run paced-torch-1 --images 40 --rate 2
run decode-1 --decode
run decode-2 --decode
run preprocess-1 --preprocess
run stat-1 --stat 5
run stat-2 --stat 5
run chaos-1 --chaos 20 --events 1000
# The embedded broker waits out fetch.wait.max.ms before it answers a fetch (default 50 ms):
# the paced run and one burst again with a 10 ms wait, interleaved with the default.
for i in 1 2; do
  RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=10 run paced-fetch10-$i --images 40 --rate 2
  run paced-auto-$((i + 3)) --images 40 --rate 2
done
RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=10 run burst-fetch10-1 --images 60
run burst-auto-4 --images 60
echo ALLDONE >> $OUT/runs.log
