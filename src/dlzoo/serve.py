"""`dlzoo serve`: a small HTTP server around a run's `predict`, for trying a model from other programs.

    POST /predict?name=picture.png   body: the file's bytes   -> JSON list of prediction records
    GET  /info                                                -> recipe, checkpoint, task metadata
    GET  /health                                              -> {"status": "ok"}

The standard library's threading server is enough here: requests are serialised on one loaded model. Put a real
web server in front of it for production traffic.
"""

from __future__ import annotations

import json
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from dlzoo.errors import UserError, one_line
from dlzoo.runs import LoadedRun, load_for_inference

MAX_BYTES = 32 << 20


def make_server(run: LoadedRun, host: str = "127.0.0.1", port: int = 8000, device: str = "auto") -> ThreadingHTTPServer:
    task = load_for_inference(run, device)
    lock = threading.Lock()
    info = {"recipe": run.recipe.name, "checkpoint": str(run.checkpoint), "meta": task.meta}

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: Any) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlparse(self.path).path
            if path == "/health":
                self._reply(200, {"status": "ok"})
            elif path == "/info":
                self._reply(200, info)
            else:
                self._reply(404, {"error": f"no such endpoint: {path}"})

        def do_POST(self) -> None:
            url = urlparse(self.path)
            if url.path != "/predict":
                self._reply(404, {"error": f"no such endpoint: {url.path}"})
                return
            length = _content_length(self.headers.get("Content-Length"))
            if not 0 < length <= MAX_BYTES:
                self._reply(400, {"error": f"send the file as the request body (1 byte to {MAX_BYTES} bytes)"})
                return
            name = _upload_name(parse_qs(url.query).get("name", [""])[0])
            data = self.rfile.read(length)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / name
                path.write_bytes(data)
                try:
                    with lock:
                        records = task.predict([str(path)])
                except UserError as error:
                    self._reply(400, {"error": one_line(str(error)).replace(str(path), name)})
                    return
                except Exception as error:  # a bug, not bad input: answer it rather than drop the connection
                    self.log_error("predict failed on %s: %r", name, error)
                    self._reply(500, {"error": f"internal error: {type(error).__name__}"})
                    return
            for record in records:
                if record.get("path") == str(path):
                    record["path"] = name
            self._reply(200, records)

    return ThreadingHTTPServer((host, port), Handler)


def _content_length(header: str | None) -> int:
    """The request's declared body size; 0 (refused) when missing or not a number."""
    try:
        return int(header or 0)
    except ValueError:
        return 0


def _upload_name(requested: str) -> str:
    """A file name to save the upload under: only its suffix matters (it picks the reader), never its folder."""
    name = Path(requested).name
    return name if name not in ("", "..") else "upload"
