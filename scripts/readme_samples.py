"""Rewrite the sample outputs of the README and the docs: every `$ tangshi …` line inside a ```text
block that follows a line starting "Real output of the bundled model" or a heading "Poems from the
bundled model" is run again, and the lines after it (up to the next blank line) are replaced by what
it prints. A command with --json shows its poems' text and, in its trailing comment, the first
poem's score.

    python scripts/readme_samples.py [FILE ...]   (default: README.md docs/commands.md docs/results.md)
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

MARKERS = ("Real output of the bundled model", "## Poems from the bundled model", "### Poems from the bundled model")
DEFAULT_FILES = ("README.md", "docs/commands.md", "docs/results.md")


def run(command: str) -> tuple[list[str], str]:
    cmd, _, comment = command.partition("#")
    args = shlex.split(cmd)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if "--json" not in args:
        return out.rstrip("\n").splitlines(), comment
    doc = json.loads(out)
    poems = doc.get("poems") or doc.get("couplets")
    score = poems[0].get("score")
    if score is not None:
        comment = re.sub(r"score [−-]?\d+\.\d+", f"score {score:.4f}".replace("-", "−"), comment)
    return [p["text"] for p in poems], comment


def rewrite(text: str) -> str:
    lines, out, i, armed = text.splitlines(), [], 0, False
    while i < len(lines):
        line = lines[i]
        out.append(line)
        if line.startswith(MARKERS):
            armed = True
        elif armed and line.startswith("```") and line.strip() != "```":
            i += 1
            while i < len(lines) and lines[i] != "```":
                if lines[i].startswith("$ tangshi "):
                    printed, comment = run(lines[i][2:])
                    out.append(lines[i].partition("#")[0].rstrip() + (f"   #{comment}" if comment else ""))
                    out += printed
                    i += 1
                    while i < len(lines) and lines[i].strip() and lines[i] != "```":
                        i += 1  # the old output
                else:
                    out.append(lines[i])
                    i += 1
            out.append("```")
            armed = False
        i += 1
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for name in sys.argv[1:] or DEFAULT_FILES:
        path = Path(name)
        path.write_text(rewrite(path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"rewrote the samples in {path}")
