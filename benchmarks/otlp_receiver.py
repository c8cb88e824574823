"""A tiny OTLP/HTTP trace collector for ``ops_bench.py``: it counts what the traced gateway exports.

Every ``POST /v1/traces`` gets 200 (an empty ``ExportTraceServiceResponse``); its spans are counted by name when the
OpenTelemetry protobuf classes can be imported (otherwise only the requests and bytes). ``GET /stats`` answers
``{"exports", "bytes", "spans", "by_name", "parse_errors"}`` as JSON. SIGTERM stops it.

Run: ``python benchmarks/otlp_receiver.py --port 4318`` (serves ``http://127.0.0.1:4318/v1/traces``).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(host: str, port: int) -> None:
    """Answer on ``host``:``port`` until SIGTERM."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:  # count requests only
        ExportTraceServiceRequest = None
    lock = threading.Lock()
    stats: dict[str, Any] = {"exports": 0, "bytes": 0, "spans": 0, "by_name": {}, "parse_errors": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a collector would

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/v1/traces":
                self._answer(404, b"", "text/plain")
                return
            names: dict[str, int] = {}
            parsed = ExportTraceServiceRequest is not None
            if parsed:
                try:
                    message = ExportTraceServiceRequest()
                    message.ParseFromString(body)
                    for resource_spans in message.resource_spans:
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                names[span.name] = names.get(span.name, 0) + 1
                except Exception:
                    parsed = False
            with lock:
                stats["exports"] += 1
                stats["bytes"] += len(body)
                stats["parse_errors"] += 0 if parsed or ExportTraceServiceRequest is None else 1
                for name, count in names.items():
                    stats["spans"] += count
                    stats["by_name"][name] = stats["by_name"].get(name, 0) + count
            self._answer(200, b"", "application/x-protobuf")  # an empty ExportTraceServiceResponse

        def do_GET(self) -> None:
            with lock:
                body = json.dumps(stats).encode()
            self._answer(200 if self.path == "/stats" else 404, body, "application/json")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
