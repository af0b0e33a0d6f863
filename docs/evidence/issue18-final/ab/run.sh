#!/usr/bin/env bash
# Today's main against the session's start (5bc0e62), alternating, same sitting: did the
# evening's changes (D-058 decode, D-059 motion on ORT, D-060 commit once acknowledged) move
# the paced p50 or the burst? Usage: ab/run.sh NEW_TREE BASE_TREE (each with its .venv)
set -uo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
NEW=$1; BASE=$2
export RADSTREAM_COMPUTE_THREADS=1
run() {  # name, tree, bench args
  local name=$1 tree=$2; shift 2
  echo "=== $name start $(date -u +%T) $(git -C $tree rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
  (cd $tree && .venv/bin/radstream bench "$@" --json-out $OUT/$name.json > $OUT/$name.out 2>&1)
  echo "=== $name rc=$? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/runs.log
}
for i in 1 2 3; do
  run paced-base-$i $BASE --images 40 --rate 2
  run paced-new-$i $NEW --images 40 --rate 2
done
for i in 1 2; do
  run burst-base-$i $BASE --images 60
  run burst-new-$i $NEW --images 60
done
echo ALLDONE >> $OUT/runs.log
