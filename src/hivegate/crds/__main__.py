"""`python -m hivegate.crds generate DIR` writes the CRDs; `check DIR` fails when they are out of date;
`validate FILE…` checks manifests against them as the API server would (needs the `test` extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hivegate.crds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="write one CRD file per kind").add_argument("folder", type=Path)
    sub.add_parser("check", help="fail when the CRD files differ from the schema").add_argument("folder", type=Path)
    sub.add_parser("validate", help="check manifests against the CRDs").add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "generate":
        from hivegate.crds.generate import write

        for path in write(args.folder):
            print(path)
        return 0
    if args.command == "check":
        from hivegate.crds.generate import stale

        out = stale(args.folder)
        for name in out:
            print(f"{args.folder / name}: out of date; run python -m hivegate.crds generate {args.folder}")
        return 1 if out else 0
    from hivegate.crds.validate import validate_file

    problems = [p for path in args.files for p in validate_file(path)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
