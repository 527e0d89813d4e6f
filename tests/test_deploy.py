"""Export (torch.export .pt2 and ONNX) and the HTTP server, on a trained digits run."""

import json
import logging
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import assert_user_error, raw_request, serving
from dlzoo.runs import load_for_inference, open_run


def reference_logits(run_dir, images):
    task = load_for_inference(open_run(run_dir), "cpu")
    with torch.no_grad():
        return task.logits(images)


def test_export_pt2_runs_without_dlzoo_and_matches(cli, digits_run, tmp_path):
    out = tmp_path / "digits.pt2"
    result = cli("export", digits_run, "--out", out)
    assert result.code == 0, result.err
    assert "inputs: images (batch, 1, 28, 28) float32;" in result.out  # what the program takes, said at once
    sidecar = json.loads((tmp_path / "digits.pt2.json").read_text())
    assert sidecar["meta"]["classes"] == [str(i) for i in range(10)]
    assert sidecar["meta"]["preprocess"]["name"] == "mnist-digit"
    program = torch.export.load(str(out))
    images = torch.rand(5, 1, 28, 28)  # another batch size than the example: the batch dimension is dynamic
    assert torch.allclose(program.module()(images), reference_logits(digits_run, images), atol=1e-5)


def test_export_refuses_a_file_name_of_another_format(cli, digits_run, tmp_path):
    assert_user_error(cli("export", digits_run, "--format", "onnx", "--out", tmp_path / "m.pt2"), "end it in .onnx")
    assert list(tmp_path.iterdir()) == []
    # A folder is named as one (it was told to end in .pt2), as is one for `generate`'s picture
    assert_user_error(cli("export", digits_run, "--out", tmp_path), "is a folder; give a file name such as",
                      "model.pt2")
    assert_user_error(cli("generate", digits_run, "--out", tmp_path), "is a folder; give a file name such as")
    assert list(tmp_path.iterdir()) == []


def test_export_onnx_matches(cli, digits_run, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "digits.onnx"
    result = cli("export", digits_run, "--format", "onnx", "--out", out)
    assert result.code == 0, result.err
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    (logits,) = session.run(None, {"images": images})
    assert np.allclose(logits, reference_logits(digits_run, torch.from_numpy(images)).numpy(), atol=1e-4)


@pytest.fixture(scope="module")
def upsampling_run(tmp_path_factory):
    """A fashion run whose network sees 30 px (the data is 28 px) and scores six test-time views."""
    from dlzoo.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "fashion-30px"
    assert main(["train", "fashion", "data.resolution=30", "tta_shift=1", "data.limit=256", "trainer.epochs=1",
                 "trainer.device=cpu", "--out", str(run_dir)]) == 0
    return run_dir


def test_an_export_takes_pictures_as_its_sidecar_prepares_them_and_scores_as_predict(cli, upsampling_run, tmp_path):
    out = tmp_path / "fashion.pt2"
    assert cli("export", upsampling_run, "--out", out).code == 0
    sidecar = json.loads((tmp_path / "fashion.pt2.json").read_text())
    size = sidecar["meta"]["preprocess"]["size"]
    assert size == 28 and sidecar["inputs"][0]["shape"] == ["batch", 1, size, size]
    images = torch.rand(3, 1, size, size)
    program = torch.export.load(str(out)).module()
    assert torch.allclose(program(images), reference_logits(upsampling_run, images), atol=1e-5)


def test_a_picture_prepared_as_the_sidecar_says_in_words_scores_as_predict(cli, upsampling_run, tmp_path):
    """A user without dlzoo follows the sidecar's `preparation`, step by step, with OpenCV and numpy alone."""
    import cv2
    from PIL import Image

    out = tmp_path / "fashion.pt2"
    assert cli("export", upsampling_run, "--out", out).code == 0
    sidecar = json.loads((tmp_path / "fashion.pt2.json").read_text())
    assert sidecar["preparation"].startswith("a batch of pictures (batch, 1, 28, 28)"), sidecar["preparation"]
    assert "decoded to 8-bit RGB (OpenCV's imread gives BGR: convert it" in sidecar["preparation"]
    assert "grey (OpenCV's RGB2GRAY), resized to 28x28 px (OpenCV: INTER_AREA when either side is longer than 28" \
        in sidecar["preparation"]
    assert "inverted (1 - x) when the median of its outermost rows and columns is above 0.5" in sidecar["preparation"]
    assert sidecar["outputs"].startswith("logits (batch, 10) over meta.classes")
    rgb = np.full((50, 40, 3), 230, np.uint8)  # a dark garment on light paper, larger than 28 px
    rgb[10:42, 8:32] = np.random.default_rng(0).integers(0, 90, (32, 24, 3))
    picture = tmp_path / "photo.png"
    Image.fromarray(rgb).save(picture)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    pixels = cv2.resize(grey, (28, 28), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    if np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])) > 0.5:
        pixels = 1 - pixels
    logits = torch.export.load(str(out)).module()(torch.from_numpy(pixels)[None, None])
    probabilities = logits.detach().softmax(1)[0]
    predicted = cli("predict", upsampling_run, picture, "--json")
    record = json.loads(predicted.out.splitlines()[0])  # one JSON line a picture
    assert sidecar["meta"]["classes"][int(probabilities.argmax())] == record["label"]
    assert float(probabilities.max()) == pytest.approx(record["probability"], abs=1e-5)


def test_each_preprocessing_does_what_its_words_say():
    """The sidecar's `preparation` for colour runs and for grey ones that keep their polarity, followed by hand."""
    import cv2

    from dlzoo.vision.preprocess import ResizePreprocessing

    rng = np.random.default_rng(1)
    for shape, interpolation in (((40, 30, 3), cv2.INTER_AREA), ((20, 16, 3), cv2.INTER_LINEAR)):
        rgb = rng.integers(0, 256, shape, dtype=np.uint8)
        colour = ResizePreprocessing(size=28, colour=True)
        assert colour.describe().startswith("RGB, resized to 28x28 px") and "channels first" in colour.describe()
        resized = cv2.resize(rgb, (28, 28), interpolation=interpolation)
        assert np.allclose(colour(rgb), resized.astype(np.float32).transpose(2, 0, 1) / 255)
        kept = ResizePreprocessing(size=28, dark_background=False)
        assert "inverted" not in kept.describe()
        grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (28, 28), interpolation=interpolation)
        assert np.allclose(kept(rgb), grey.astype(np.float32) / 255)


def test_predict_scores_a_batch_at_a_time(upsampling_run, digit_pictures):
    task = load_for_inference(open_run(upsampling_run), "cpu")
    paths = [str(path) for path in list(digit_pictures.values())[:5]]
    whole = task.predict(paths)
    seen = []
    task.scoring_net().register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
    task.config.data.eval_batch_size = 2
    assert task.predict(paths) == whole
    assert seen == [2] * 12 + [1] * 6  # three batches, six views each


def test_export_errors(cli, tmp_path):
    assert_user_error(cli("export", tmp_path), "holds no checkpoint")


def test_export_to_a_folder_leaves_nothing_behind(cli, digits_run, tmp_path):
    folder = tmp_path / "existing"
    folder.mkdir()
    assert_user_error(cli("export", digits_run, "--out", folder), "folder", str(folder))
    assert [p.name for p in tmp_path.iterdir()] == ["existing"] and not any(folder.iterdir())
    # the sidecar's place taken by a folder is refused just as early
    (tmp_path / "model.pt2.json").mkdir()
    assert_user_error(cli("export", digits_run, "--out", tmp_path / "model.pt2"), "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "model.pt2.json"]


def test_a_failed_export_removes_the_folders_it_made_and_no_others(cli, digits_run, tmp_path, monkeypatch):
    """`--out new/dir/model.pt2` failing after its folders were made (a full disk, a name too long) left them behind,
    empty; a folder that was there before stays."""
    from dlzoo import export

    (tmp_path / "mine").mkdir()
    new = tmp_path / "mine" / "new" / "dir"
    assert_user_error(cli("export", digits_run, "--out", new / ("x" * 300 + ".pt2")), "too long")
    assert [p.name for p in tmp_path.rglob("*")] == ["mine"]

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "_write_program", full_disk)
    assert_user_error(cli("export", digits_run, "--out", new / "model.pt2"), "No space left on device")
    assert [p.name for p in tmp_path.rglob("*")] == ["mine"]


@pytest.mark.parametrize("name", ["model.pt2", "model.PT2"])
def test_export_pt2_logs_no_warning_about_its_file_name(cli, digits_run, tmp_path, caplog, name):
    # torch.export.save logs a warning for a file name not ending in .pt2 (the temporary one, or `--out m.PT2`)
    with caplog.at_level(logging.WARNING, logger="torch.export"):
        result = cli("export", digits_run, "--out", tmp_path / name)
    assert result.code == 0, result.err
    assert "ending in .pt2" not in caplog.text + result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, f"{name}.json"]
    assert torch.export.load(tmp_path / name).module()(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_refuses_a_port_out_of_range(cli, digits_run, port):
    assert_user_error(cli("serve", digits_run, "--port", port), "--port", port, "0 to 65535")


def test_serve_refuses_an_empty_host(cli, digits_run, monkeypatch):
    """`--host ''` listened on every interface, saying so only as 0.0.0.0 in its URL."""
    from dlzoo import serve

    def listen(*args):
        raise AssertionError(f"it went on to listen: {args[1:]}")  # rather than serve for ever

    monkeypatch.setattr(serve, "make_server", listen)
    assert_user_error(cli("serve", digits_run, "--host", "", "--port", "0"), "argument --host: an empty host would "
                      "listen on every interface; give 0.0.0.0 if that is meant")


def test_serve_answers_bad_upload_names(digits_run, digit_pictures):
    picture = next(iter(digit_pictures.values()))
    with serving(digits_run) as (base, _):
        for name in ["x\0.png", "a" * 300 + ".png", "x\n.png"]:
            request = urllib.request.Request(f"{base}/predict?name={urllib.parse.quote(name)}",
                                             data=picture.read_bytes())
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(request)
            assert error.value.code == 400 and "name=" in json.loads(error.value.read())["error"]
        # the server keeps serving; a suffix that is not plain letters and digits is dropped, the upload still read
        request = urllib.request.Request(f"{base}/predict?name={urllib.parse.quote('x.<png>')}",
                                         data=picture.read_bytes())
        with urllib.request.urlopen(request) as response:
            assert json.loads(response.read())[0]["path"] == "x.<png>"
        with urllib.request.urlopen(f"{base}/health") as response:
            assert json.loads(response.read()) == {"status": "ok"}


def test_serve_predicts_over_http(digits_run, digit_pictures):
    with serving(digits_run) as (base, _):
        with urllib.request.urlopen(f"{base}/info") as response:
            assert json.loads(response.read())["recipe"] == "digits"
        picture = next(iter(digit_pictures.values()))
        request = urllib.request.Request(f"{base}/predict?name={picture.name}", data=picture.read_bytes())
        with urllib.request.urlopen(request) as response:
            records = json.loads(response.read())
        assert records[0]["path"] == picture.name and records[0]["label"] in [str(i) for i in range(10)]
        bad = urllib.request.Request(f"{base}/predict?name=x.png", data=b"not an image")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(bad)
        assert error.value.code == 400 and "not a readable image" in json.loads(error.value.read())["error"]
        # a name that points outside the upload folder is saved under a plain name; the picture is still read
        outside = urllib.request.Request(f"{base}/predict?name=..", data=picture.read_bytes())
        with urllib.request.urlopen(outside) as response:
            assert json.loads(response.read())[0]["path"] == "upload"
        # a malformed Content-Length is answered, not dropped
        status, body = raw_request(base, "POST", "/predict?name=x.png", {"Content-Length": "many"})
        assert status == 400 and "request body" in json.loads(body)["error"]


def test_a_classifier_server_names_the_endpoints_it_has(cli, digits_run, monkeypatch):
    """GET /generate is a generative run's: a digits server answers it with a 404 that names its own endpoints, as
    do GET /info and the start line."""
    from dlzoo.serve import PredictionServer

    with serving(digits_run) as (base, _):
        status, body = raw_request(base, "GET", "/generate?n=4")
        assert (status, json.loads(body)) == (404, {"error": "recipe 'digits' does not draw pictures; this server "
                                                             "answers POST /predict?name=FILE, GET /info, GET /health"})
        status, body = raw_request(base, "GET", "/nowhere")
        assert status == 404 and json.loads(body)["error"].startswith("no such endpoint: /nowhere; this server answers")
        with urllib.request.urlopen(f"{base}/info") as response:
            assert json.loads(response.read())["endpoints"] == ["POST /predict?name=FILE", "GET /info", "GET /health"]

    def stop(self):  # as Ctrl-C does, once it has said where it listens
        raise KeyboardInterrupt

    monkeypatch.setattr(PredictionServer, "serve_forever", stop)
    result = cli("serve", digits_run, "--port", "0", "--device", "cpu")
    assert result.code == 0 and "(POST /predict?name=FILE, GET /info, GET /health); Ctrl-C stops" in result.out


def test_serve_decodes_an_upload_before_it_waits_for_the_model(digits_run, digit_pictures):
    """Decoding a large picture takes seconds: done before the request queues for the model, not in its turn."""
    picture = next(iter(digit_pictures.values()))
    with serving(digits_run) as (base, server):
        decoded = threading.Event()
        read_input = server.task.read_input
        server.task.read_input = lambda path: (read_input(path), decoded.set())[0]
        request = urllib.request.Request(f"{base}/predict?name=a.png", data=picture.read_bytes())
        answers = []
        with server.lock:  # another request predicting
            asking = threading.Thread(target=lambda: answers.append(json.loads(urllib.request.urlopen(request).read())))
            asking.start()
            assert decoded.wait(timeout=30)
            assert not answers  # still waiting its turn
        asking.join(timeout=30)
    assert answers[0][0]["path"] == "a.png" and answers[0][0]["label"] in [str(i) for i in range(10)]


# Clients that connect at once, from another process (threads of this one would take turns with the server's), each
# uploading a picture and printing the status line of its answer, or the error it met instead.
BURST = """
import sys, threading, urllib.error, urllib.request
url, picture, count = sys.argv[1] + "/predict?name=x.png", open(sys.argv[2], "rb").read(), int(sys.argv[3])
answers, ready = [], threading.Barrier(count)
def ask():
    ready.wait()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=picture), timeout=60) as answer:
            answers.append(str(answer.status))
    except (urllib.error.HTTPError, OSError) as error:
        answers.append(str(getattr(error, "code", type(error).__name__)))
clients = [threading.Thread(target=ask) for _ in range(count)]
[client.start() for client in clients]
[client.join() for client in clients]
print("\\n".join(answers))
"""


def test_serve_answers_every_client_of_a_burst(digits_run, digit_pictures):
    """Clients that send their pictures at once all get an answer: with the standard library's backlog of 5
    connections waiting to be accepted, the kernel reset the connections of about half of 30 such clients."""
    picture = str(next(iter(digit_pictures.values())))
    with serving(digits_run) as (base, _):
        burst = subprocess.run([sys.executable, "-c", BURST, base, picture, "30"], capture_output=True, text=True,
                               timeout=120)
    answers = burst.stdout.splitlines()
    assert answers == ["200"] * 30, (Counter(answers), burst.stderr)


def test_serve_answers_protocol_mistakes_in_json_and_survives_clients_that_leave(digits_run, capsys):
    with serving(digits_run) as (base, _):
        for method in ("PUT", "DELETE"):  # the standard library's own refusal, in JSON like every other answer
            status, body = raw_request(base, method, "/predict", {"Content-Length": "1"}, b"x")
            assert status == 501 and "Unsupported method" in json.loads(body)["error"]
        assert raw_request(base, "HEAD", "/health") == (501, b"")  # an answer to HEAD has no body, an error's neither
        status, body = raw_request(base, "POST", "/predict?name=x.png", {"Transfer-Encoding": "chunked"})
        assert status == 411 and "Content-Length" in json.loads(body)["error"]
        # the endpoint exists: a GET is told to POST, and a form upload (curl -F) to send the bytes alone
        status, body = raw_request(base, "GET", "/predict")
        assert status == 405 and "--data-binary" in json.loads(body)["error"]
        assert raw_request(base, "POST", "/info", {"Content-Length": "0"})[0] == 405
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/predict")
        assert refused.value.code == 405 and refused.value.headers["Allow"] == "POST"
        form = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\nPNG\r\n--b--\r\n'
        status, body = raw_request(base, "POST", "/predict", {"Content-Type": "multipart/form-data; boundary=b",
                                                              "Content-Length": str(len(form))}, form)
        assert status == 415 and "not in a form" in json.loads(body)["error"]
        port = urllib.parse.urlsplit(base).port
        with socket.create_connection(("127.0.0.1", port)) as client:  # declares 1,000 bytes, sends 5 and leaves
            client.sendall(b"POST /predict?name=x.png HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort")
        with urllib.request.urlopen(f"{base}/health") as response:
            assert json.loads(response.read()) == {"status": "ok"}
    assert "Traceback" not in capsys.readouterr().err
