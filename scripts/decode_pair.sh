#!/bin/bash
# Two versions of tangshi decoding at the same time, one on each core, so that both see the same
# moments of a VM whose speed drifts: the working tree's and another checkout's (for example
# `git worktree add /tmp/before <commit>`), the cores swapped every round.
#
#     bash scripts/decode_pair.sh /tmp/before/src [rounds=4] [poems=40]
set -euo pipefail
old_src=${1:?usage: decode_pair.sh OLD_SRC [rounds] [poems]}
rounds=${2:-4}
poems=${3:-40}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 0 ]; then a=0; b=1; else a=1; b=0; fi
  PYTHONPATH="$old_src" taskset -c $a python "$here/poems_loop.py" "$poems" > "$out/old" &
  taskset -c $b python "$here/poems_loop.py" "$poems" > "$out/new"
  wait
  echo "round $i: before $(cat "$out/old") | now $(cat "$out/new")"
done
