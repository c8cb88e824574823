"""Where hivegate keeps state on this machine: `$HIVEGATE_STATE_DIR`, else `$XDG_STATE_HOME/hivegate`, else
`~/.local/state/hivegate` (created with mode 0700 on first use)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["state_dir"]


def state_dir(*parts: str) -> Path:
    """The state directory (or a subdirectory of it), created if missing."""
    configured = os.environ.get("HIVEGATE_STATE_DIR")
    if configured:
        base = Path(configured)
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "hivegate"
    path = base.joinpath(*parts)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
