"""`visits`: the command-line tool. One module per command group; `root` assembles them.

- `common`: the context, input parsing, connections and output every command shares;
- `output`: how a visit looks in the terminal (state lines, timeline, tables);
- `visits`: start and the visit commands, show, overdue, list, schema;
- `engine`: dev and worker; `audit`, `customers`, `kpi`, `plans`: their groups.
"""

from starter.cli.root import app, main

__all__ = ["app", "main"]
