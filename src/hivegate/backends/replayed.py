"""What a session set on its backend beyond `initialize`, so a new process can be given it again (MCP 2025-11-25,
"Utilities / Logging" and "Server Features / Resources / Subscriptions").

A backend process that is stopped (idle, or gone and started again) forgets the logging level the client chose and
the resources it subscribed to. `Replayed` remembers the last `logging/setLevel` and the subscribed URIs, from the
requests the backend accepted (answered without an error), and gives them back as requests to send after
`notifications/initialized`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Replayed"]


class Replayed:
    def __init__(self) -> None:
        self.log_level: Any = None  # the params of the last `logging/setLevel`
        self.subscriptions: set[str] = set()

    def record(self, method: str, params: Any) -> None:
        """Remember what an accepted request set on the backend (nothing for other methods)."""
        if method == "logging/setLevel":
            self.log_level = params
        elif method in ("resources/subscribe", "resources/unsubscribe") and isinstance(params, dict):
            uri = params.get("uri")
            if isinstance(uri, str):
                if method == "resources/subscribe":
                    self.subscriptions.add(uri)
                else:
                    self.subscriptions.discard(uri)

    def requests(self) -> list[tuple[str, Any]]:
        """(method, params) of the requests that set it all again on a new process, in order."""
        out: list[tuple[str, Any]] = []
        if self.log_level is not None:
            out.append(("logging/setLevel", self.log_level))
        out.extend(("resources/subscribe", {"uri": uri}) for uri in sorted(self.subscriptions))
        return out
