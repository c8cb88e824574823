"""`hivegate authz` through the installed console script, as a user or a CI job runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

WEATHER = 'permit(principal, action == Action::"call_tool", resource == Tool::"weather");'
ENGINEERING = 'permit(principal in THVGroup::"engineering", action, resource);'
TOOLS_CALL = 'permit(principal, action == Action::"tools/call", resource);'


def hivegate() -> list[str]:
    """The `hivegate` script installed next to this interpreter (a venv's bin/), else `python -m hivegate`."""
    found = shutil.which("hivegate", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "hivegate"]


def hg(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*hivegate(), *argv], input=stdin, capture_output=True, text=True, timeout=60)


def write_config(tmp_path: Path, policies: list[str]) -> str:
    path = tmp_path / "authz.yaml"
    path.write_text(
        "version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n" + "".join(f"    - {json.dumps(p)}\n" for p in policies)
    )
    return str(path)


def test_validate_through_the_console_script(tmp_path: Path) -> None:
    good = hg("authz", "validate", write_config(tmp_path, [WEATHER, ENGINEERING]))
    assert (good.returncode, good.stdout, good.stderr) == (0, "2 policies: 0 errors, 0 warnings\n", "")

    bad = hg("authz", "validate", write_config(tmp_path, [WEATHER, TOOLS_CALL]))
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("error: cedar.policies[1] (policy1): can never match")
    assert 'did you mean Action::"call_tool"?' in lines[0]
    assert lines[1] == "2 policies: 1 error, 0 warnings"

    missing = hg("authz", "validate", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert len(missing.stderr.splitlines()) == 1
    assert "missing.yaml: cannot read" in missing.stderr


def test_check_through_the_console_script(tmp_path: Path) -> None:
    config = write_config(tmp_path, [WEATHER, ENGINEERING])
    allow = hg("authz", "check", config, "--claims", '{"sub": "alice"}', "--tool", "weather")
    assert allow.returncode == 0
    assert allow.stdout.splitlines() == ["ALLOW", "policies: policy0", f"  policy0: cedar.policies[0]: {WEATHER}"]

    deny = hg("authz", "check", config, "--claims", '{"sub": "alice"}', "--tool", "deploy", "--format", "json")
    assert deny.returncode == 3
    assert json.loads(deny.stdout) == {
        "decision": "deny",
        "policies": [],
        "names": [],
        "why": "no_policy",
        "explanation": "denied: no policy permits it (default deny)",
        "errors": [],
    }

    engineer = hg(
        "authz",
        "check",
        config,
        "--claims",
        "-",
        "--prompt",
        "runbook",
        stdin='{"sub": "bob", "groups": ["engineering"]}',
    )
    assert (engineer.returncode, engineer.stdout.splitlines()[:2]) == (0, ["ALLOW", "policies: policy1"])

    bad = hg("authz", "check", config, "--claims", '{"sub": "alice"}', "--tool", "calc", "--args", "[1]")
    assert bad.returncode == 1
    assert bad.stderr == "hivegate authz check: error: --args: must be a JSON object, got an array\n"

    usage = hg("authz", "check", config, "--claims", '{"sub": "alice"}')
    assert usage.returncode == 2
    assert len(usage.stderr.splitlines()) == 1
    assert "--tool --prompt --resource" in usage.stderr
