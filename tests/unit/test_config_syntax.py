"""Every configuration file hivegate reads says where its syntax breaks: `FILE:LINE:COL: not valid YAML: …`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hivegate.authz.cases import load_case_file
from hivegate.authz.policy_config import load_authz_config
from hivegate.crds.validate import validate_file
from hivegate.errors import ConfigError
from hivegate.observe.audit import load_audit_config
from hivegate.vmcp.manifests.documents import read_documents
from hivegate.vmcp.spec import load_vmcp_config

BROKEN = "name: x\nbackends:\n  - name: a\n    url: http://h/mcp\n   command: y\n"  # line 5 is indented wrong


def crd_check(path: Path) -> None:
    raise ConfigError(validate_file(path)[0])


@pytest.mark.parametrize(
    ("load", "prefix"),
    [
        (load_vmcp_config, "vmcp config "),
        (lambda p: list(read_documents(p)), ""),
        (load_authz_config, "authz config "),
        (load_audit_config, "audit config "),
        (load_case_file, ""),
        (crd_check, ""),
    ],
)
def test_a_yaml_syntax_error_keeps_its_line_and_column(
    load: Callable[[Path], Any], prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == (
        f"{prefix}{path}:5:4: not valid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection from line 3, column 3)"
    )


def test_a_json_syntax_error_keeps_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "authz.json"
    path.write_text('{\n  "version": "1.0",\n  "type": cedarv1\n}\n')
    with pytest.raises(ConfigError) as info:
        load_authz_config(path)
    assert str(info.value) == f"authz config {path}:3:11: not valid JSON: Expecting value"
