"""The line recognizer (`digit-lines`): model contract, CTC decoding, the training composer, a tiny end-to-end run
read by `dlzoo read`, and its errors."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import dlzoo
from conftest import assert_user_error
from dlzoo.cli import main
from dlzoo.data.images import load_image_arrays
from dlzoo.errors import UserError
from dlzoo.models import create
from dlzoo.reader import DigitReader, LineReader, load_reader
from dlzoo.reader.compose_lines import LineComposer, LineStyle
from dlzoo.reader.ctc import BLANK, digit_shares, greedy_decode, greedy_texts
from pictures import held_out_digits, write

# A line recognizer small enough for a test: 400 training digits, 4 steps, a narrow network.
TINY_LINES = ["data.limit=400", "data.batch_size=16", "data.lines_per_epoch=64", "data.eval_lines=20",
              "trainer.epochs=1", "trainer.device=cpu", "model.args.width=4", "model.args.hidden=8"]


@pytest.fixture(scope="module")
def lines_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("lines") / "digit-lines"
    assert main(["train", "digit-lines", *TINY_LINES, "--out", str(run_dir)]) == 0
    return run_dir


def test_model_reads_any_width_into_frames_of_two_pixels():
    net = create("line-crnn", num_classes=11, width=4, hidden=8).eval()
    for width in (16, 100, 256):
        assert net(torch.rand(3, 1, 32, width)).shape == (3, width // 2, 11)
    conv = create("line-crnn", num_classes=11, width=4, hidden=8, sequence="conv").eval()
    assert conv(torch.rand(2, 1, 32, 64)).shape == (2, 32, 11)
    with pytest.raises(ValueError, match="32 pixels high"):
        net(torch.rand(1, 1, 28, 64))


def test_greedy_ctc_decoding_merges_repeats_and_drops_blanks():
    # Frames read: blank, 3, 3, blank, 3, 7, 7, blank (class c is digit c - 1): "226" with a blank between the 2s.
    best = [BLANK, 3, 3, BLANK, 3, 7, 7, BLANK]
    probabilities = np.full((len(best), 11), 0.01, np.float32)
    for frame, cls in enumerate(best):
        probabilities[frame, cls] = 0.9
    probabilities[2, 3] = 0.95  # the first 2 is surest at its second frame
    symbols = greedy_decode(probabilities)
    assert [s.digit for s in symbols] == [2, 2, 6]
    assert [(s.first, s.last, s.peak) for s in symbols] == [(1, 2, 2), (4, 4, 4), (5, 6, 5)]
    logits = torch.from_numpy(np.log(probabilities))[None]
    assert greedy_texts(torch.cat([logits, torch.zeros(1, 8, 11)])) == ["226", ""]
    # A digit's probability is its share among the digits at its peak frame, the blank's 0.3 left out.
    shares = digit_shares(np.array([0.3, 0.35, 0.21, 0.14, *[0.0] * 7]))
    np.testing.assert_allclose(shares[:3], [0.5, 0.3, 0.2])
    np.testing.assert_allclose(shares.sum(), 1)


@pytest.mark.parametrize("distortion", [{}, {"elastic": 1.5, "aspect": 0.15}], ids=["plain", "elastic"])
def test_training_composer_draws_the_digits_its_labels_say(distortion):
    arrays = load_image_arrays("mnist5k")
    apart = LineStyle(touching=0.0, apart_gap=[0.35, 0.5], degrees=0.0, slant=0.0, **distortion)
    composer = LineComposer(torch.tensor(arrays.train_images[:500]), torch.tensor(arrays.train_labels[:500]),
                            style=apart)
    picks, lengths = composer.random_picks(40, 6, torch.Generator().manual_seed(0))
    images, targets, out_lengths = composer.compose(picks, lengths, augment=False)
    assert images.shape[:3] == (40, 1, 32) and images.shape[-1] % 16 == 0
    assert torch.equal(out_lengths, lengths) and len(targets) == int(lengths.sum())
    assert torch.equal(targets, torch.cat([composer.labels[p[:n]] for p, n in zip(picks, lengths, strict=True)]))
    # Set well apart, each digit is one run of inked columns: as many runs as labels.
    runs = [int(np.diff(np.r_[0, (image[0].amax(0) > 0.2).int().numpy(), 0]).clip(0).sum()) for image in images]
    assert np.mean(np.array(runs) == lengths.numpy()) >= 0.9, (runs, lengths.tolist())
    assert float(images.max()) <= 1 and float(images.min()) >= 0


def test_elastic_distortion_moves_strokes_but_keeps_the_ink():
    arrays = load_image_arrays("mnist5k")
    digits, labels = torch.tensor(arrays.train_images[:200]), torch.tensor(arrays.train_labels[:200])
    picks, lengths = LineComposer(digits, labels).random_picks(30, 5, torch.Generator().manual_seed(0))

    def draw(elastic: float) -> torch.Tensor:
        composer = LineComposer(digits, labels, style=LineStyle(elastic=elastic))
        return composer.compose(picks, lengths, augment=False, generator=torch.Generator().manual_seed(1))[0]

    plain, bent = draw(0.0), draw(1.5)
    assert plain.shape == bent.shape and torch.equal(plain, draw(0.0))
    changed = ((plain > 0.5) != (bent > 0.5)).float().sum() / (plain > 0.5).float().sum()
    assert changed > 0.2, "strokes should move"
    assert 0.8 < float(bent.sum() / plain.sum()) < 1.25, "a smooth warp neither erases nor smears the ink"


def test_training_lines_use_only_training_digits(lines_run):
    from dlzoo.engine.runtime import Runtime
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import build_config

    recipe = get_recipe("digit-lines")
    config = build_config(recipe, overrides=TINY_LINES)
    task = recipe.task(config)
    task.setup(Runtime.create(config.trainer, init_process_group=False))
    arrays = load_image_arrays("mnist5k")
    train = torch.tensor(arrays.train_images[:400]).float().div(255).unsqueeze(1)
    assert torch.equal(task.train_composer.glyphs, train)
    held_out = {image.tobytes() for image in arrays.test_images}
    assert not any(image.tobytes() in held_out for image in arrays.train_images[:400])
    assert sum(len(lengths) for _, _, lengths in task.test_lines) == 20


def test_tiny_run_reads_pictures_with_dlzoo_read(cli, lines_run, tmp_path):
    summary = json.loads((lines_run / "summary.json").read_text())
    assert set(summary["metrics"]["test"]) == {"loss", "exact", "digit_accuracy"}
    digits, _ = held_out_digits(per_class=1)
    line = np.hstack([np.pad(255 - d, ((10, 10), (6, 6)), constant_values=255) for d in digits[:4]])
    picture = write(tmp_path / "line.png", np.stack([line] * 3, -1))
    result = cli("read", lines_run, picture, "--json", "--annotate", tmp_path / "annotated")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert re.fullmatch(r"[0-9]*", record["text"]) and len(record["digits"]) == len(record["text"])
    for digit in record["digits"]:
        assert 0 <= digit["probability"] <= 1 and len(digit["alternatives"]) == 2 and digit["box"][2] >= 1
    assert Path(record["annotated"]).is_file()
    reader = load_reader(lines_run, "cpu")
    assert isinstance(reader, LineReader)
    assert dlzoo.read_digits(str(picture), lines_run).text == record["text"]
    assert dlzoo.read_digits(np.full((40, 40), 255, np.uint8), reader).text == ""


def test_line_and_digit_readers_refuse_each_others_runs(lines_run, digits_run):
    with pytest.raises(UserError, match="line recognizer"):
        DigitReader(load_reader(lines_run, "cpu").task)
    with pytest.raises(UserError, match="digit-lines"):
        LineReader(load_reader(digits_run, "cpu").task)


def test_bench_reader_measures_a_line_run(lines_run):
    from dlzoo.bench import get_benchmark

    result = get_benchmark("reader")(pictures=2, run_dir=str(lines_run))
    assert result["model"]["reader"] == "LineReader" and result["model"]["recipe"] == "digit-lines"
    assert 0 <= result["touching"]["digit_accuracy"] <= 1
    with pytest.raises(UserError, match="recipe"):
        get_benchmark("reader")(pictures=2, recipe="fashion")


def test_bench_reader_refuses_a_corrupt_summary_in_one_line(cli, lines_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lines_run, run)
    (run / "summary.json").write_text('{"metrics": ')  # cut short
    assert_user_error(cli("bench", "reader", f"run_dir={run}", "pictures=1"), f"cannot read {run / 'summary.json'}")


def test_bad_line_config_is_a_user_error(cli, tmp_path):
    assert_user_error(cli("train", "digit-lines", *TINY_LINES, "data.digit_height=30", "--out", tmp_path / "r"),
                      "digit_height")
    assert_user_error(cli("train", "digit-lines", *TINY_LINES, "data.height=30", "--out", tmp_path / "r"),
                      "multiple of 8")
    assert_user_error(cli("train", "digit-lines", *TINY_LINES, "model.args.hidden=0", "--out", tmp_path / "r"),
                      "model 'line-crnn': hidden must be >= 1, got 0")
    assert not (tmp_path / "r").exists()


def test_own_atoms_gives_each_digit_the_components_only_it_was_read_on():
    from dlzoo.reader.lines import own_atoms
    from dlzoo.reader.segment import Atom

    def atom(label: int, x0: int, x1: int) -> Atom:
        return Atom(label, (x0, 0, x1, 10), 50, (x0 + x1) / 2, label)

    one, broken_left, broken_right, pair = atom(1, 0, 10), atom(2, 20, 26), atom(3, 27, 30), atom(4, 40, 60)
    # Peaks: over `one`; over the left part of a broken digit; two over the touching pair.
    owned = own_atoms([one, broken_left, broken_right, pair], np.array([5.0, 24.0, 45.0, 55.0]))
    assert owned == [[one], [broken_left, broken_right], [], []]
    assert own_atoms([one], np.array([])) == []


def test_a_classifier_run_reads_along_where_digits_stand_apart(cli, lines_run, good_digits_run, tmp_path):
    digits, labels = held_out_digits(per_class=1)
    chosen = [3, 5, 7, 2]
    line = np.hstack([np.pad(255 - digits[c], ((10, 10), (8, 8)), constant_values=255) for c in chosen])
    picture = write(tmp_path / "apart.png", np.stack([line] * 3, -1))
    reader = load_reader(lines_run, "cpu", classifier_run=good_digits_run)
    assert isinstance(reader, LineReader) and isinstance(reader.classifier, DigitReader)

    def undecided(strips: list[np.ndarray]) -> list[np.ndarray]:
        """A line recognizer that finds each digit (one peak per run of inked columns) but cannot tell which:
        every digit about equally likely, 0 a hair ahead."""
        frames = []
        for strip in strips:
            probabilities = np.zeros((-(-strip.shape[1] // 2), 11), np.float32)
            probabilities[:, 0] = 1.0  # blank
            inked = np.r_[0, (strip.max(0) > 0.2).astype(int), 0]
            starts, stops = np.flatnonzero(np.diff(inked) == 1), np.flatnonzero(np.diff(inked) == -1)
            for start, stop in zip(starts, stops, strict=True):
                probabilities[(start + stop) // 4] = [0.0, 0.1009] + [0.0999] * 9
            frames.append(probabilities)
        return frames

    reader.probabilities = undecided
    reading = reader.read(str(picture))
    assert reading.text == "".join(str(labels[c]) for c in chosen)
    reader.classifier = None
    assert reader.read(str(picture)).text == "0000"
    result = cli("read", lines_run, picture, "--classifier", good_digits_run, "--json")
    assert result.code == 0 and re.fullmatch(r"[0-9]*", json.loads(result.out)["text"])


def test_a_classifier_run_only_helps_a_line_run(cli, lines_run, digits_run, tmp_path):
    digits, _ = held_out_digits(per_class=1)
    picture = write(tmp_path / "digit.png", np.pad(255 - digits[0], 10, constant_values=255))
    assert_user_error(cli("read", digits_run, picture, "--classifier", digits_run), "helps a digit-lines run")
    assert_user_error(cli("read", lines_run, picture, "--classifier", lines_run), "line recognizer")


def test_bench_reader_checks_the_classifier_run_before_training(lines_run, digits_run, tmp_path):
    from dlzoo.bench import get_benchmark

    reader_bench = get_benchmark("reader")
    with pytest.raises(UserError, match="recipe=digit-lines"):
        reader_bench(pictures=1, classifier_run=str(digits_run))  # would train a digits run, which it cannot help
    with pytest.raises(UserError, match="must be a digits run"):
        reader_bench(pictures=1, recipe="digit-lines", classifier_run=str(lines_run))
    with pytest.raises(UserError, match="not found"):
        reader_bench(pictures=1, recipe="digit-lines", classifier_run=str(tmp_path / "missing"))
    result = reader_bench(pictures=2, run_dir=str(lines_run), classifier_run=str(digits_run))
    assert result["model"]["classifier_run"] == str(digits_run)



def _logits(run_dir: Path, strips: torch.Tensor) -> torch.Tensor:
    from dlzoo.runs import load_for_inference, open_run

    with torch.no_grad():
        return load_for_inference(open_run(run_dir), "cpu").logits(strips)


def test_export_pt2_takes_strips_of_any_width_the_reader_pads_to(cli, tmp_path):
    run_dir = tmp_path / "conv"
    assert cli("train", "digit-lines", *TINY_LINES, "model.args.sequence=conv", "--out", run_dir).code == 0
    result = cli("export", run_dir, "--out", tmp_path / "lines.pt2")
    assert result.code == 0, result.err
    sidecar = json.loads((tmp_path / "lines.pt2.json").read_text())
    assert sidecar["inputs"] == [{"name": "images", "shape": ["batch", 1, 32, "16*strip_width"],
                                  "dtype": "torch.float32"}]
    assert "blank (index 0)" in sidecar["outputs"] and "multiple of 16" in sidecar["preparation"]
    program = torch.export.load(str(tmp_path / "lines.pt2")).module()
    for batch, width in ((1, 48), (3, 160)):  # neither the example's batch (2) nor its width (64)
        strips = torch.rand(batch, 1, 32, width)
        with torch.no_grad():
            assert torch.allclose(program(strips), _logits(run_dir, strips), atol=1e-5)


def test_an_lstm_exports_to_onnx_only_and_reads_any_width_there(lines_run, cli, tmp_path):
    # torch.export would unroll the LSTM over the example's frames: a pt2 program of one width.
    assert_user_error(cli("export", lines_run, "--out", tmp_path / "lines.pt2"), "exports to ONNX only",
                      "--format onnx")
    assert list(tmp_path.iterdir()) == []
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert cli("export", lines_run, "--format", "onnx", "--out", tmp_path / "lines.onnx").code == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "lines.onnx"), providers=["CPUExecutionProvider"])
    for batch, width in ((1, 48), (3, 160)):
        strips = np.random.default_rng(width).random((batch, 1, 32, width), dtype=np.float32)
        (logits,) = session.run(None, {"images": strips})
        assert np.allclose(logits, _logits(lines_run, torch.from_numpy(strips)).numpy(), atol=1e-4)
    # The graph declares its frames free (torch wrote the example's 32, and onnxruntime warned at other widths).
    import onnx

    (output,) = onnx.load(str(tmp_path / "lines.onnx")).graph.output
    frames = output.type.tensor_type.shape.dim[1]
    assert frames.dim_param and not frames.HasField("dim_value")
