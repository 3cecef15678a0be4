"""``python -m greensed.launch run-cell RUN_DIR [--threads N]``: one grid cell
as a process (the local parallel launcher starts these)."""

from __future__ import annotations

import argparse
import sys

from greensed.errors import GreensedError
from greensed.launch.cell import run_cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m greensed.launch")
    sub = parser.add_subparsers(dest="command", required=True)
    rc = sub.add_parser("run-cell", help="train (or resume) one prepared grid cell")
    rc.add_argument("run_dir")
    rc.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        summary = run_cell(args.run_dir, threads=args.threads,
                           report=lambda line: print(line, flush=True))
    except GreensedError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    status = summary.status.value if summary is not None else None
    return {"finished": 0, "interrupted": 130}.get(str(status), 1)


if __name__ == "__main__":
    sys.exit(main())
