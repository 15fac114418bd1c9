"""Starts a long-running process in the background and records its pid: `hack/cluster.sh` and
`hack/demo.sh` start every daemon through this.

    python hack/spawn.py --log FILE --pidfile FILE [--env K=V ...] -- COMMAND [ARG ...]

Why not `setsid cmd & echo $! > pidfile` in bash: when the shell runs with job control, the
background job leads its own process group, so `setsid` forks and `$!` names a parent that exits
at once, while the daemon lives on under a pid nobody recorded. Here the daemon is the direct
child of a fresh fork, which is never a group leader, so `start_new_session` always succeeds and
the recorded pid is the daemon itself. Its session (and process group) id equals that pid, so
`kill -- -PID` stops it with everything it started.

The pid file is written whole and then renamed, so a reader never sees a partial pid.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", required=True, type=pathlib.Path, help="stdout and stderr go here (appended)")
    parser.add_argument("--pidfile", required=True, type=pathlib.Path)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    with args.log.open("ab") as log, open(os.devnull, "rb") as devnull:
        try:
            child = subprocess.Popen(
                command, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as err:
            print(f"spawn.py: cannot start {command[0]}: {err}", file=sys.stderr)
            return 127
    tmp = args.pidfile.with_name(args.pidfile.name + ".tmp")
    tmp.write_text(f"{child.pid}\n")
    tmp.replace(args.pidfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
