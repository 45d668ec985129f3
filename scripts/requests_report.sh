#!/bin/bash
# Rewrites reports/requests.md: what readers ask for, from the bundled model, scored by `tangshi metrics`:
# per form 200 poems continuing two given lines, 200 with three keywords, 200 with a 藏尾 acrostic
# (all --tone strict), and 200 couplets for 20 first lines of Tang poems (10 each).
# Usage: scripts/requests_report.sh [prepared-data-folder]   (the copy rate is measured against its train.txt)
set -euo pipefail
DATA=${1:-data/prepared/10000-seed0}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
OUT=reports/requests.md
FIRSTS="白日依山盡 床前明月光 春眠不覺曉 紅豆生南國 空山新雨後 千山鳥飛絕 國破山河在 海上生明月 獨在異鄉爲異客 兩個黃鸝鳴翠柳
朝辭白帝彩雲間 故人西辭黃鶴樓 月落烏啼霜滿天 晴川歷歷漢陽樹 芳草萋萋鸚鵡洲 無邊落木蕭蕭下 細雨濕流光 落霞與孤鶩齊飛 清明時節雨紛紛 大漠孤煙直"
section() {  # title, file name, generate options...
  local title=$1 name=$2; shift 2
  echo
  echo "## $title"
  echo
  echo "\`tangshi generate $* --tone strict --n 200 --seed 0 --json\`, then \`tangshi metrics\` on it:"
  echo
  tangshi generate "$@" --tone strict --n 200 --seed 0 --json > "$TMP/$name.json"
  echo '```text'
  tangshi metrics "$TMP/$name.json" --data "$DATA" | sed "s#$TMP/#/tmp/#"
  echo '```'
}
{
  echo "# Continuation, hidden characters, keywords and couplets with the bundled model"
  echo
  echo "Written $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD) with models/tangshi-default by \`scripts/requests_report.sh\` (sampling: temperature 0.8, top-p 0.9). The copy rate is measured against $DATA/train.txt. Each property is a decoding constraint, so its rate is 1.000 by construction; \`tests/test_requests.py\` checks the same at the same sizes against the 平水韻 table read on its own."
  for form in wujue qijue wulv qilv; do
    case $form in wu*) two="白日依山盡，黃河入海流。";; *) two="兩個黃鸝鳴翠柳，一行白鷺上青天。";; esac
    case $form in *jue) hidden=月紅雪中;; *) hidden=月紅雪中夜風木空;; esac
    section "$form: two lines given" "${form}_start" --form "$form" --start "$two"
    section "$form: keywords 月山酒" "${form}_keywords" --form "$form" --keywords 月山酒
    section "$form: 藏尾 $hidden" "${form}_hidden" --form "$form" --acrostic "$hidden" --at -1
  done
  echo
  echo "## Couplets"
  echo
  echo "For each of 20 first lines, \`tangshi couplet 上联 --n 10 --seed 0 --json\` (tones strict); the 200 couplets scored by \`tangshi metrics --couplet\`:"
  echo
  for first in $FIRSTS; do
    tangshi couplet "$first" --n 10 --seed 0 --json | python3 -c 'import json,sys; print("\n".join(c["text"] for c in json.load(sys.stdin)["couplets"]))'
  done > "$TMP/couplets.txt"
  echo '```text'
  tangshi metrics --couplet "$TMP/couplets.txt" | sed "s#$TMP/#/tmp/#"
  echo '```'
  echo
  echo "The first couplet of each:"
  echo
  echo '```text'
  awk 'NR % 10 == 1' "$TMP/couplets.txt"
  echo '```'
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
