"""The outputs room: where tangshi writes, one policy for every folder a command fills.

Every command that writes a folder (data fetch, data prepare, train, export, experiment)
opens it through `OutputFolder`, and nowhere else decides what may be overwritten:

- tangshi writes only into a folder that is absent, empty, or marked as tangshi's own output
  of the same kind. The mark is `.tangshi-output.json`: the kind, the command, and every entry
  (file or folder name) tangshi wrote there. A folder written by an older tangshi, before the
  mark existed, is recognised by its contents (`KINDS[kind].legacy`) and marked on first use.
- Anything else is refused with one line that names the folder and says what to do.
- Replacing earlier output of the same kind needs `replace=True` (the commands' `--replace`).
  Even then only the entries the mark lists are removed; a file tangshi did not write is
  never touched, and a name tangshi would write that is held by a foreign file is refused.
- Plan, check, then act: whatever replaces or removes entries (--replace, an epoch written
  again, `last`/`best` moved, old epochs dropped, leftovers of a killed process cleared) first
  checks every entry it will touch, files inside folders included, and refuses with one line
  naming any file tangshi did not write, before it changes anything.
- The output folder must not be, contain, or lie inside a folder the command reads.
- While a command writes, it holds `fcntl.flock` on `.tangshi-lock`, so a second process
  writing the same folder exits with one line instead of interleaving with the first.
- New content is written under a `.tangshi-tmp-*` name inside the folder and moved into
  place with one `os.replace`, then the folder is fsynced. Leftover temporary entries of a
  killed process are removed when the folder is next opened.
- An output made of several files (a prepared split, an exported model, the poems) replaces the
  earlier one under an undo record (`OutputFolder.replacing`): the mark says "writing" while the
  earlier entries wait in an undo folder, and "complete" once every new file is in place. A
  failure puts the earlier output back at once; a killed process's is put back when the folder
  is next opened, and until then readers refuse the folder (`require_complete`). So a reader
  sees the earlier output or the new one, never a mix.
- Every `OSError` becomes one `TangshiError` line that names the path.

marks (the mark `.tangshi-output.json`, the kinds of output and how a folder written before the mark is
recognised), folder (`OutputFolder`: open, check, lock, stage, replace under an undo record).

May import: errors, files. Nothing that knows what a model or a poem is.
"""

from tangshi.outputs.folder import OutputFolder
from tangshi.outputs.marks import KINDS, LOCK, MARKER, command_line, read_marker, require_complete, user_entries

__all__ = ["KINDS", "LOCK", "MARKER", "OutputFolder", "command_line", "read_marker", "require_complete", "user_entries"]
