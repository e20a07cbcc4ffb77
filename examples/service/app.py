"""A small AI service that gates every model output with pygate before acting on it.

Two of these run in the deployment (a financial-recommendation service and a code
assistant); they differ only in ``PYGATE_SERVICE``. Standard library HTTP on purpose:
the example shows the gate, not a web framework.

Environment:
    PYGATE_SERVICE   service name (``finance`` or ``assistant``): selects its policy sets
    PYGATE_OPA_URL   the service's OPA sidecar (unset: a local OPA that pygate starts)
    PYGATE_AUDIT_DB  audit database path or URL (shared by services for the daily quota)
    SERVICE_HOST     listen address (default 127.0.0.1)
    SERVICE_PORT     listen port (default 8000)

Endpoints:
    GET  /health  -> 200 {"ok": true, "service": ...}
    POST /act     {"output": ..., "user": ..., "context": ...}
                  -> 200 {"acted": bool, "decision": {...}}  (400 on a body that is not JSON)
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pygate import Gate


class Handler(BaseHTTPRequestHandler):
    gate: Gate

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, {"ok": True, "service": self.gate.service})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/act":
            self._reply(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            doc = json.loads(self.rfile.read(length))
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            self._reply(400, {"error": f"body: {exc}"})
            return
        decision = self.gate.evaluate(doc.get("output"), doc.get("user"), doc.get("context"))
        # A real service would now run the tool call / transfer only when allowed.
        self._reply(200, {"acted": decision.allowed, "decision": decision.model_dump(mode="json")})

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    Handler.gate = Gate(os.environ.get("PYGATE_SERVICE", "finance"))
    host = os.environ.get("SERVICE_HOST", "127.0.0.1")
    port = int(os.environ.get("SERVICE_PORT", "8000"))
    server = ThreadingHTTPServer((host, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{Handler.gate.service} service on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        Handler.gate.close()


if __name__ == "__main__":
    main()
