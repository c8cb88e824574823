"""`hivegate operator` on the command line: its flags, and one clear line when there is no cluster to talk to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hivegate.cli.main import build_parser


def test_the_flags_and_their_defaults() -> None:
    args = build_parser().parse_args(["operator", "-n", "a", "--namespace", "b", "--image", "reg/hivegate:1"])
    assert (args.namespace, args.image, args.health_port, args.resync) == (["a", "b"], "reg/hivegate:1", 8081, 60.0)
    assert not args.no_leader_election
    assert args.log_format == "json"


def test_no_cluster_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(KUBECONFIG=str(tmp_path / "missing"), HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "hivegate", "operator"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"hivegate operator: kubeconfig {tmp_path / 'missing'}: No such file or directory\n"
