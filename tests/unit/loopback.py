"""A real loopback HTTP server answering POSTs with a handler you give: for endpoint backends
(reward models, judges) whose wire format the tests check. Use the ``rm`` fixture (conftest)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, Any]]


@dataclass
class Server:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


Handler = Callable[[dict[str, Any], str, int], Reply]


def start_loopback(handler: Handler, servers: list[ThreadingHTTPServer]) -> Server:
    """Serve ``handler`` on a free loopback port; the server is appended to ``servers``."""
    lock = threading.Lock()
    box: list[Server] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                body["_path"] = self.path
                box[0].seen.append(body)
                box[0].headers.append(dict(self.headers))
                n = len(box[0].seen)
            status, payload = handler(body, self.path, n)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers.append(srv)
    box.append(Server(f"http://127.0.0.1:{srv.server_address[1]}"))
    return box[0]
