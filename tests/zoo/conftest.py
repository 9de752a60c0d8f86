"""Fixtures of the core tests: the toy domain in place of the installed ones, a loopback HTTP server."""
from __future__ import annotations

import http.server
import threading
import time

import pytest

from tests.zoo import toy
from zoo import registry as registry_module


@pytest.fixture
def toy_registry(tmp_path_factory, monkeypatch):
    """The process-wide registry replaced by one holding only the toy domain (restored after the test)."""
    registry = toy.toy_registry(tmp_path_factory.mktemp("toy_weights"))
    monkeypatch.setattr(registry_module, "_registry", registry)
    return registry


class Server:
    """Serves ``routes[path] = bytes``; ``mode`` is "good", "short" (closes half-way), "slow"
    or "short-no-length" (closes half-way and sends no Content-Length)."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.mode = "good"
        self.gets = 0
        self.paths: list[str] = []  # every path asked for, in order
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.gets += 1
                server.paths.append(self.path)
                data = server.routes.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if server.mode != "short-no-length":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.mode == "slow":  # keeps the first fetcher busy while the second waits
                    time.sleep(0.5)
                self.wfile.write(data[: len(data) // 2] if server.mode.startswith("short") else data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()
