"""A stdio MCP server whose ``tools/list`` takes a fixed time: the backend of the vMCP list benchmark.

Newline-delimited JSON-RPC, no SDK, answered in order (the answers are those of ``stdio_minimal_server.py``):
``tools/list`` is answered after ``--list-delay-ms`` (default 20) and lists ``echo`` plus ``--tools N`` more.
With ``--log FILE`` each ``tools/list`` appends ``list <pid> <received> <answered>`` (``time.monotonic()``, the
same clock in every process) so the benchmark can see when the virtual MCP server listed its backends.

    python benchmarks/slow_list_server.py --list-delay-ms 20 --tools 4 --log /tmp/lists.log
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from stdio_minimal_server import TOOLS, answer, extra_tool


def main() -> None:
    parser = argparse.ArgumentParser(description="A stdio MCP server with a slow tools/list (benchmarks).")
    parser.add_argument("--list-delay-ms", type=float, default=20.0, help="time tools/list takes (default 20)")
    parser.add_argument("--tools", type=int, default=0, metavar="N", help="list N extra tools (default 0)")
    parser.add_argument("--log", metavar="FILE", help="append one line per tools/list to FILE")
    args = parser.parse_args()
    TOOLS.extend(extra_tool(i) for i in range(args.tools))
    delay = args.list_delay_ms / 1000
    out = sys.stdout
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        is_list = message.get("method") == "tools/list" and "id" in message
        received = time.monotonic()
        if is_list and delay > 0:
            time.sleep(delay)
        reply = answer(message)
        if reply is not None:
            out.write(json.dumps(reply, separators=(",", ":")) + "\n")
            out.flush()
        if is_list and args.log:
            with open(args.log, "a") as log:
                log.write(f"list {os.getpid()} {received:.6f} {time.monotonic():.6f}\n")


if __name__ == "__main__":
    main()
