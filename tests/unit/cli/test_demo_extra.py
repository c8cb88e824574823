from __future__ import annotations

import argparse
import importlib.util

import pytest

from hivegate.cli.demo import demo_command


def test_the_demo_without_its_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a))
    assert demo_command(argparse.Namespace(host="127.0.0.1", port=0)) == 2
    err = capsys.readouterr().err
    assert err == "hivegate demo: error: the demo server needs the demo extra: pip install 'hivegate[demo]'\n"
