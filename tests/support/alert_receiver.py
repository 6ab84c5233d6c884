"""A webhook receiver to run *inside* a container on a compose network (stdlib only).

Alertmanager in the stack must reach the receiver by name, so the e2e tests start this script in
the ``python`` image on the stack's network (``python alert_receiver.py 8080``). Every POST is
appended as one JSON line to /tmp/posts.jsonl and echoed to stdout; ``GET /posts`` returns them
all as a JSON list, which the test reads with ``docker exec``.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

POSTS = Path("/tmp/posts.jsonl")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        record = {"path": self.path, "body": json.loads(body or b"null")}
        with POSTS.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        lines = POSTS.read_text().splitlines() if POSTS.exists() else []
        payload = json.dumps([json.loads(line) for line in lines]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 8080), Handler).serve_forever()
