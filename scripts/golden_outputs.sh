#!/usr/bin/env bash
# Golden outputs of `generate` and `couplet`: one file per command in DIR, to diff two versions of the code
# byte for byte (a refactor must leave every one unchanged). Usage: scripts/golden_outputs.sh DIR
set -euo pipefail
out=${1:?usage: scripts/golden_outputs.sh DIR}
mkdir -p "$out"
cases=(
  "g01|generate --form wujue --n 3 --json"
  "g02|generate --form qijue --n 3 --json"
  "g03|generate --form wulv --n 2 --json"
  "g04|generate --form qilv --n 2 --json"
  "g05|generate --form free --n 3 --json"
  "g06|generate --strategy original --start 春 --json"
  "g07|generate --strategy greedy --form wujue --start 月 --json"
  "g08|generate --strategy beam --beam 4 --form wujue --json"
  "g09|generate --form qijue --acrostic 春夏秋冬 --json"
  "g10|generate --form wujue --acrostic 山水花月 --at -1 --json"
  "g11|generate --form qilv --keywords 月山酒 --n 2 --json"
  "g12|generate --form qijue --start 朝辭白帝彩雲間，千里江陵一日還。 --n 2 --json"
  "g13|generate --form wulv --rhyme-group 東 --n 2 --json"
  "g14|generate --form qijue --candidates 4 --n 2 --json"
  "g15|generate --form wujue --script simplified --n 2 --json"
  "g16|generate --form qijue --tone strict --n 2 --json"
  "g17|couplet 两个黄鹂鸣翠柳 --tone off --n 2 --json"
  "g18|couplet 春风又绿江南岸 --n 2 --candidates 3 --json"
  "g19|generate --form wujue --top-k 20 --temperature 1.0 --seed 7 --json"
  "g20|generate --form qijue --precision fp32 --json"
  "g21|generate --form qijue --tone loose --no-rhyme --n 2 --json"
  "g22|generate --list-rhyme-groups"
  "g23|generate --form wujue --acrostic 花山月還 --at -1 --n 2 --json"
  "g24|generate --form qijue --title 送友人 --n 2 --json"
  "g25|generate --form qilv --title 秋夜 --topic 0 --candidates 3 --json"
  "g26|generate --template □□□□□，□□□□□。□□□□□，□□□□□。 --n 2 --json"
  "g27|generate --template 白日依山盡，黃河入海流。欲窮千里目，更上一層樓。 --revise 3 --candidates 4 --json"
  "g28|generate --form wulv --parallel 0 --allow-repeats --n 2 --json"
  "g29|generate --strategy beam --form qijue --title 春望 --json"
  "g30|couplet 海上生明月 --parallel 0 --script simplified --json"
)
for c in "${cases[@]}"; do
  name=${c%%|*}; cmd=${c#*|}
  # shellcheck disable=SC2086
  tangshi $cmd > "$out/$name.out" 2> "$out/$name.err" || echo "rc=$?" >> "$out/$name.err"
done
# the first five again with the compiled kernels off
for c in "${cases[@]:0:5}"; do
  name=${c%%|*}; cmd=${c#*|}
  # shellcheck disable=SC2086
  TANGSHI_FUSED_CELL=0 tangshi $cmd > "$out/$name-nofused.out" 2> "$out/$name-nofused.err" || echo "rc=$?" >> "$out/$name-nofused.err"
done
