#!/bin/bash
# Rewrites reports/forms.md: 200 poems per form from the bundled model, scored by `tangshi metrics`.
# Usage: scripts/forms_report.sh [prepared-data-folder]   (the copy rate is measured against its train.txt)
set -euo pipefail
DATA=${1:-data/prepared/all-seed0}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
OUT=reports/forms.md
{
  echo "# Forms with the bundled model"
  echo
  echo "Each block: \`tangshi generate --form F --n 200 --seed 0 --json > F.json\` (\`--strategy sample\`, default settings: temperature 0.8, top-p 0.9, rhyme on, tone off, no repeated clauses), then \`tangshi metrics F.json --form F --data $DATA\` (copy rate against the model's own training poems). Written $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD) with models/tangshi-default by \`scripts/forms_report.sh\`."
  for spec in wujue qijue wulv qilv "wujue strict" "qilv strict"; do
    set -- $spec
    form=$1; tone=${2:-}
    name=forms_${form}${tone:+_$tone}
    echo
    echo "## $form${tone:+ with --tone $tone}"
    echo
    tangshi generate --form "$form" --n 200 --seed 0 --json ${tone:+--tone $tone} > "$TMP/$name.json"
    echo '```text'
    tangshi metrics "$TMP/$name.json" --form "$form" --data "$DATA" | sed "s#$TMP/#/tmp/#"
    echo '```'
  done
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
