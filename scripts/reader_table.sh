#!/usr/bin/env bash
# usage: scripts/reader_table.sh OUTDIR [CORPUS]: 200 poems per form at default settings (seed 0) and
# 50 七律 with --keywords 月山酒, each scored by tangshi metrics beside the real poems of the same form
set -euo pipefail
out=$1; real=${2:-../shared/chinese-poetry/quantangshi}; mkdir -p "$out"
for f in wujue qijue wulv qilv; do
  tangshi generate --form $f --n 200 --seed 0 --json > "$out/$f.json"
  tangshi metrics "$out/$f.json" --real "$real" --json > "$out/$f.metrics.json"
done
tangshi generate --form qilv --n 50 --seed 0 --keywords 月山酒 --json > "$out/kw.json"
tangshi metrics "$out/kw.json" --real "$real" --json > "$out/kw.metrics.json"
