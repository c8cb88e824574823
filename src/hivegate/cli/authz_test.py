"""`hivegate authz test FILE...`: run policy test cases (`hivegate.authz.cases`) and report the failures.

Every case is decided as the gateway decides a call. Prints a table of the failing cases with the policies that
decided each, then a summary. Exit 0 when every case passes, 1 when any fails, 2 on bad input (a case file or
config that does not load: one line naming the file, the case and the field). `--junit PATH` also writes JUnit XML.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hivegate.errors import ConfigError

if TYPE_CHECKING:
    from hivegate.authz.cedar import CedarAuthorizer
    from hivegate.authz.suite import CaseResult

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "add_test_parser", "test_command"]

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
_COLUMN = 60


def add_test_parser(sub: Any) -> None:
    t = sub.add_parser(
        "test",
        help="run policy test cases (YAML files of requests and the decision each must get)",
        description="Decide every case of the YAML case files as the gateway would (same engine, same entities) "
        "and print the failures with the policies that decided them. A case file names the config it tests "
        "(`config:`, relative to the file) unless --config is given. Exit 0 all pass, 1 a case failed, 2 bad input. "
        "A `principal.token` is decoded WITHOUT verification, for testing policies only.",
    )
    t.add_argument("files", nargs="+", metavar="FILE", help="case files (YAML)")
    t.add_argument("--config", metavar="FILE", help="the authz config to test (overrides each file's `config:`)")
    t.add_argument("--junit", metavar="PATH", help="also write the results as JUnit XML to PATH")
    t.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")


def test_command(args: argparse.Namespace) -> int:
    """Run `hivegate authz test`; returns the exit code."""
    prog = "hivegate authz test"
    try:
        results = _run(args.files, args.config)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    failed = [r for r in results if not r.passed]
    for line in _table(results if args.verbose else failed):
        print(line)
    files = len({str(r.file.path) for r in results})
    print(f"{len(results)} cases in {files} file{'s' if files != 1 else ''}: {len(results) - len(failed)} passed, "
          f"{len(failed)} failed")  # fmt: skip
    if args.junit:
        from hivegate.authz.suite import junit_xml

        try:
            Path(args.junit).write_text(junit_xml(results), encoding="utf-8")
        except OSError as exc:
            print(f"{prog}: error: --junit {args.junit}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return EXIT_FAILED if failed else 0


def _run(files: list[str], config: str | None) -> list[CaseResult]:
    """Load every case file (all of them before deciding anything: bad input is reported first), then decide."""
    from hivegate.authz.cases import load_case_file
    from hivegate.authz.suite import run_case

    loaded = [load_case_file(f) for f in files]
    authorizers: dict[tuple[str, str], CedarAuthorizer] = {}
    results: list[CaseResult] = []
    for case_file in loaded:
        path = config if config is not None else case_file.config
        if path is None:
            raise ConfigError(f"{case_file.path}: config: required (the authz config it tests), or pass --config")
        key = (str(path), case_file.server)
        if key not in authorizers:
            authorizers[key] = _authorizer(str(path), case_file.server)
        results += [run_case(authorizers[key], case_file, case) for case in case_file.cases]
    return results


def _authorizer(path: str, server: str) -> CedarAuthorizer:
    from hivegate.authz import CedarAuthorizer, load_authz_config

    cfg = load_authz_config(path)
    try:
        return CedarAuthorizer.from_config(cfg, server)
    except ConfigError as exc:
        raise ConfigError(f"authz config {path}: {exc}") from None


def _table(results: list[CaseResult]) -> list[str]:
    if not results:
        return []
    rows = [("CASE", "EXPECTED", "GOT", "DECIDED BY")]
    for r in results:
        where = f"{r.file.path}: {r.case.label}"
        expected = "allow" if r.case.expect_allow else "deny"
        if r.case.reasons:
            expected += f" by {','.join(r.case.reasons)}"
        rows.append((_cut(where), expected, r.got + ("" if r.passed else " ✗"), r.explanation))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3] for row in rows]
    for r in results:
        lines += [f"  {r.case.label}: error: {e}" for e in r.decision.errors]
    return lines


def _cut(text: str) -> str:
    return text if len(text) <= _COLUMN else "…" + text[-(_COLUMN - 1) :]
