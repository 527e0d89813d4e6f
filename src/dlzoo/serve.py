"""`dlzoo serve`: a small HTTP server around a trained run, for trying a model from other programs.

A run that predicts from files (image classifiers, `digit-lines`, `housing`):
    POST /predict?name=picture.png   body: the file's bytes   -> JSON list of prediction records
A generative run (vae-*, cgan-*):
    GET  /generate?class=7&n=16&seed=0                        -> PNG: the grid `dlzoo generate --class 7 --n 16
                                                                 --seed 0` writes (class= for cgan-* runs only)
Every run:
    GET  /info                                                -> recipe, checkpoint, endpoints, task metadata
    GET  /health                                              -> {"status": "ok"}

Every answer but a grid is JSON, refusals (4xx, with one message) included. The standard library's threading server
is enough here: requests are serialised on one loaded model (an upload is decoded, a grid encoded, outside that
turn). Put a real web server in front of it for production traffic.
"""

from __future__ import annotations

import re
import socket
import tempfile
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from dlzoo.errors import UserError, one_line
from dlzoo.files import json_text
from dlzoo.runs import LoadedRun, load_for_inference
from dlzoo.serve_grids import GRID_EXAMPLE, draw_grid, grid_usage
from dlzoo.tasks.base import Task
from dlzoo.tasks.generative import GenerativeImageTask

MAX_BYTES = 32 << 20
REQUEST_TIMEOUT_S = 60
MAX_NAME = 255  # a file name's longest on common file systems
UPLOAD_EXAMPLE = "curl --data-binary @FILE 'http://HOST:PORT/predict?name=FILE'"


@dataclass(frozen=True)
class Endpoint:
    method: str
    usage: str  # how it is called: the start line, GET /info and every 404 name it
    refusal: str  # what a request in another method is told (405)


PREDICT = Endpoint("POST", "POST /predict?name=FILE", f"POST a file's bytes to /predict, e.g. {UPLOAD_EXAMPLE}")
INFO = Endpoint("GET", "GET /info", "/info answers GET only")
HEALTH = Endpoint("GET", "GET /health", "/health answers GET only")


def make_server(run: LoadedRun, host: str = "127.0.0.1", port: int = 8000, device: str = "auto") -> PredictionServer:
    """A server listening on host:port (not yet serving) that answers with the run's predictions, or for a
    generative run with the grids it draws."""
    draws = issubclass(run.recipe.task, GenerativeImageTask)
    if not draws:
        run.recipe.task.check_predicts(run.recipe.name, run.run_dir)  # refused at start, not with a 500 per request
    task = load_for_inference(run, device)
    if draws:
        first = {"/generate": Endpoint("GET", grid_usage(task.conditional),
                                       f"/generate answers GET only, e.g. {GRID_EXAMPLE}")}
    else:
        first = {"/predict": PREDICT}
    endpoints = {**first, "/info": INFO, "/health": HEALTH}
    info = {"recipe": run.recipe.name, "checkpoint": str(run.checkpoint),
            "endpoints": [endpoint.usage for endpoint in endpoints.values()], "meta": task.shown_meta()}
    return PredictionServer((host, port), task, info, endpoints)


class PredictionServer(ThreadingHTTPServer):
    """One loaded run served over HTTP: each request (`_Handler`) in a thread of its own, predictions (or grids drawn)
    one at a time."""

    # Connections the kernel holds until they are accepted. socketserver's 5 is too few: when more clients than
    # that connect at once (a script sending its pictures in parallel), the kernel resets the others' connections.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int], task: Task, info: dict[str, Any], endpoints: dict[str, Endpoint]):
        self.task = task
        self.info = info  # what GET /info answers
        self.endpoints = endpoints  # by path
        self.lock = threading.Lock()
        super().__init__(address, _Handler)

    def served(self) -> str:
        """The endpoints, as the start line and a 404 name them."""
        return ", ".join(endpoint.usage for endpoint in self.endpoints.values())

    def missing(self, path: str) -> str:
        """What a request for an endpoint this run's server lacks is told."""
        recipe = self.info["recipe"]
        if path == "/predict":
            return f"recipe '{recipe}' draws pictures rather than predicting from files; this server answers " \
                   f"{self.served()}"
        if path == "/generate":
            return f"recipe '{recipe}' does not draw pictures; this server answers {self.served()}"
        return f"no such endpoint: {path}; this server answers {self.served()}"

    def predict(self, path: Path) -> list[dict[str, Any]]:
        upload = self.task.read_input(str(path))  # decoding a large picture takes seconds: not while others wait
        with self.lock:
            return self.task.predict([upload])

    def generate(self, query: str) -> bytes:
        """The PNG grid that GET /generate?QUERY asks for; a UserError for a mistake in the query."""
        return draw_grid(self.task, query, self.lock)


class _Handler(BaseHTTPRequestHandler):
    """The endpoints (module docstring); every answer but a grid, refusals included, is JSON."""

    server: PredictionServer
    timeout = REQUEST_TIMEOUT_S  # a client that stops sending mid-request does not hold a thread for ever

    def _reply(self, status: int, payload: Any, allow: str | None = None) -> None:
        self._send(status, json_text(payload, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8",
                   allow)

    def _send(self, status: int, body: bytes, content_type: str, allow: str | None = None) -> None:
        try:
            self.send_response(status)
            if allow:  # a 405 names the methods the endpoint takes
                self.send_header("Allow", allow)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client left before its answer: nothing to tell
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (an unknown method, a malformed request line) in JSON, as the
        rest, not as an HTML page."""
        self.close_connection = True
        if getattr(self, "command", None) == "HEAD":  # a HEAD answer has no body, an error's neither
            self.send_response(code)
            self.end_headers()
            return
        self._reply(code, {"error": message or HTTPStatus(code).phrase})

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if self._refused(url.path, "GET"):
            return
        if url.path == "/health":
            self._reply(200, {"status": "ok"})
        elif url.path == "/info":
            self._reply(200, self.server.info)
        else:  # /generate
            self._send_grid(url.query)

    def do_POST(self) -> None:
        url = urlparse(self.path)
        if self._refused(url.path, "POST"):
            return
        upload = self._receive_upload(url.query)  # /predict
        if upload is not None:
            self._reply(*self._predict(*upload))

    def _refused(self, path: str, method: str) -> bool:
        """Answer a request for an endpoint this run's server lacks (404), or in a method the endpoint does not
        take (405); True when it was answered so."""
        endpoint = self.server.endpoints.get(path)
        if endpoint is not None and endpoint.method == method:
            return False
        self.close_connection = True  # a body, if any, is left unread
        if endpoint is None:
            self._reply(404, {"error": self.server.missing(path)})
        else:
            self._reply(405, {"error": endpoint.refusal}, allow=endpoint.method)
        return True

    def _send_grid(self, query: str) -> None:
        try:
            png = self.server.generate(query)
        except UserError as error:
            self._reply(400, {"error": one_line(str(error))})
        except Exception as error:  # a bug, not bad input: answer it rather than drop the connection
            self.log_error("generate failed on %r: %r", query, error)
            self._reply(500, {"error": f"internal error: {type(error).__name__}"})
        else:
            self._send(200, png, "image/png")

    def _receive_upload(self, query: str) -> tuple[bytes, str] | None:
        """The uploaded file's bytes and the name replies call it by; None when the request was refused (and
        answered) or the client left."""
        data = self._read_body()
        if data is None:
            return None
        if self.headers.get_content_type().startswith("multipart/"):  # curl -F, an HTML form
            self._reply(415, {"error": f"send the file's bytes as the whole request body, not in a form: "
                                       f"{UPLOAD_EXAMPLE}"})
            return None
        name = _upload_name(parse_qs(query).get("name", [""])[0])
        if name is None:
            self._reply(400, {"error": f"name= must be a file name of at most {MAX_NAME} characters, "
                                       "without control characters"})
            return None
        return data, name

    def _read_body(self) -> bytes | None:
        """The request's body, whole; None when it was refused (and answered) or the client left before sending
        it all."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # its body is left unread
            self._reply(411, {"error": "send the file with a Content-Length header; chunked bodies are not read"})
            return None
        length = _content_length(self.headers.get("Content-Length"))
        if not 0 < length <= MAX_BYTES:
            self._reply(400, {"error": f"send the file as the request body (1 byte to {MAX_BYTES} bytes)"})
            return None
        try:  # read before any refusal: closing on an unread body can reset the reply
            data = self.rfile.read(length)
        except (TimeoutError, ConnectionError):  # the client stopped sending, or left
            self.close_connection = True
            return None
        if len(data) < length:  # it closed before sending what it declared
            self.close_connection = True
            return None
        return data

    def _predict(self, data: bytes, name: str) -> tuple[int, Any]:
        """(status, payload) for one upload. It is saved under a name the server makes, never the client's (that
        may hold anything); only a plain suffix is kept, for readers that go by it. The folder goes either way."""
        with tempfile.TemporaryDirectory(prefix="dlzoo-serve-") as folder:
            path = Path(folder) / f"upload{_plain_suffix(name)}"
            try:
                path.write_bytes(data)
                records = self.server.predict(path)
            except UserError as error:
                return 400, {"error": one_line(str(error)).replace(str(path), name)}
            except Exception as error:  # a bug, not bad input: answer it rather than drop the connection
                self.log_error("predict failed on %r: %r", name, error)
                return 500, {"error": f"internal error: {type(error).__name__}"}
        for record in records:
            for key in ("path", "input"):  # image and line tasks name the file `path`, table tasks `input`
                if key in record and record[key] in (str(path), None):  # None: the upload was read beforehand
                    record[key] = name
        return 200, records


def _content_length(header: str | None) -> int:
    """The request's declared body size; 0 (refused) when missing or not a number."""
    try:
        return int(header or 0)
    except ValueError:
        return 0


def _upload_name(requested: str) -> str | None:
    """The name replies call the upload by: the client's file name without its folder; None when it is not one."""
    name = Path(requested).name
    if len(name) > MAX_NAME or any(char < " " or char == "\x7f" for char in name):
        return None
    return name if name not in ("", "..") else "upload"


def _plain_suffix(name: str) -> str:
    """The name's suffix if it is a short run of letters and digits (`.png`, `.csv`), else none."""
    suffix = Path(name).suffix
    return suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ""
