"""Reading numbers: pictures composed in the tests from held-out mnist5k digits (never trained on), as users make
them: ink on paper, chalk on a board, uneven light, noise, touching digits, broken strokes, several lines."""

import ast
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

import dlzoo
from conftest import assert_user_error, run_subprocess
from dlzoo.bench.pages import paint
from dlzoo.data.images import load_image_arrays
from dlzoo.errors import UserError
from dlzoo.reader import DigitReader, Reading
from dlzoo.reader.ctc import edit_distance
from dlzoo.reader.cuts import find_cuts
from dlzoo.reader.ink import find_ink
from dlzoo.reader.segment import segment, stroke_width
from pictures import held_out_digits, write


@pytest.fixture(scope="module")
def reader_run(good_digits_run) -> Path:
    """Better than the shared tiny run, still quick: conftest's run of all 4,000 training digits, 4 epochs (the
    tests only read it; the session trains it once for them and the other tests that judge predictions)."""
    return good_digits_run


@pytest.fixture(scope="module")
def reader(reader_run) -> DigitReader:
    return DigitReader.from_run(reader_run, "cpu")


@pytest.fixture(scope="module")
def digits() -> dict[int, list[np.ndarray]]:
    images, labels = held_out_digits(per_class=6)
    by_class: dict[int, list[np.ndarray]] = {}
    for image, label in zip(images, labels, strict=True):
        by_class.setdefault(int(label), []).append(image)
    return by_class


def ink_row(digits: list[np.ndarray], gaps: list[int], height: int = 48) -> np.ndarray:
    """Light-on-black alpha in [0, 1] of digits side by side; a negative gap pushes a digit into its neighbour."""
    glyphs = []
    for digit in digits:
        ys, xs = np.nonzero(digit)
        crop = digit[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.float32) / 255
        scale = height / 20 * 0.8
        glyphs.append(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1))
    width = sum(g.shape[1] for g in glyphs) + sum(max(0, gap) for gap in gaps) + 2 * height
    canvas = np.zeros((2 * height, width), np.float32)
    left = height
    for index, glyph in enumerate(glyphs):
        if index:
            left += gaps[index - 1]
        top = int(1.5 * height) - glyph.shape[0]
        region = canvas[top: top + glyph.shape[0], left: left + glyph.shape[1]]
        np.maximum(region, glyph, out=region)
        left += glyph.shape[1]
    return canvas[:, : left + height]


def pushed_together(first: np.ndarray, second: np.ndarray, extra: int = 2) -> int:
    """The gap at which two digits' strokes first meet, minus `extra` pixels (they touch, a little overlapped)."""
    for gap in range(20, -40, -1):
        _, labels = cv2.connectedComponents((ink_row([first, second], [gap]) > 0.4).astype(np.uint8))
        if labels.max() == 1:
            return gap - extra
    raise AssertionError("digits never touch")


def on_paper(alpha: np.ndarray, ink=(25, 35, 110), paper=(236, 230, 214), gradient: float = 0.0,
             noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Coloured ink on paper (RGB uint8), with light falling off left to right and sensor noise."""
    light = 1 - gradient * np.linspace(0, 1, alpha.shape[1], dtype=np.float32)[None, :]
    return paint(alpha, ink, paper, light, noise * 255, np.random.default_rng(seed))


def number(digits, text: str, variant: int = 0) -> list[np.ndarray]:
    return [digits[int(char)][variant] for char in text]


NUMBERS = ["2024", "1789", "305", "64", "918273", "5"]


def test_reads_numbers_of_held_out_digits_on_paper(reader, digits):
    reads = [reader.read(on_paper(ink_row(number(digits, text, i), [14] * (len(text) - 1)))).text
             for i, text in enumerate(NUMBERS)]
    right = sum(read == text for read, text in zip(reads, NUMBERS, strict=True))
    assert right >= len(NUMBERS) - 1, reads


def test_reading_reports_boxes_probabilities_and_alternatives(reader, digits):
    picture = on_paper(ink_row(number(digits, "47"), [16]))
    reading = reader.read(picture)
    assert [d.value for d in reading.digits] == list(reading.text) and len(reading.digits) == 2
    (first, second) = reading.digits
    assert first.box[0] + first.box[2] <= second.box[0] + 2  # left to right, in picture pixels
    for digit in reading.digits:
        x, y, width, height = digit.box
        assert x >= 0 and y >= 0 and x + width <= picture.shape[1] and y + height <= picture.shape[0]
        assert 0.3 * picture.shape[0] < height < 0.7 * picture.shape[0]
        assert 0 < digit.probability <= 1 and len(digit.alternatives) == 2
        assert all(p <= digit.probability for _, p in digit.alternatives)
    assert json.loads(json.dumps(reading.to_dict()))["text"] == reading.text


def test_photo_like_pictures_gradient_noise_and_dark_board(reader, digits):
    alpha = ink_row(number(digits, "3816", 2), [12, 18, 10])
    photo = on_paper(alpha, gradient=0.55, noise=0.04, seed=1)
    board = on_paper(alpha, ink=(235, 240, 230), paper=(35, 60, 45), gradient=0.4, noise=0.03, seed=2)
    assert not find_ink(photo).light_ink and find_ink(board).light_ink
    assert reader.read(photo).text == "3816"
    assert reader.read(board).text == "3816"


def test_touching_digits_are_split(reader, digits):
    texts = ["27", "50", "4193", "68"]
    reads = []
    for i, text in enumerate(texts):
        glyphs = number(digits, text, i)
        # Every other pair pushed together until the strokes meet; the others apart.
        gaps = [pushed_together(glyphs[k], glyphs[k + 1]) if k % 2 == 0 else 12 for k in range(len(text) - 1)]
        alpha = ink_row(glyphs, gaps)
        _, labels = cv2.connectedComponents((alpha > 0.4).astype(np.uint8))
        assert labels.max() < len(text)  # some digits really touch
        reads.append(reader.read(on_paper(alpha)).text)
    # Touching digits are the hard case (`dlzoo bench reader` measures it): most digits and numbers right.
    errors = sum(edit_distance(read, text) for read, text in zip(reads, texts, strict=True))
    assert errors <= 3 and sum(read == text for read, text in zip(reads, texts, strict=True)) >= 2, reads


def test_broken_stroke_is_read_as_one_digit(reader, digits):
    alpha = ink_row(number(digits, "7", 1) + number(digits, "45", 1), [20, 20])
    columns = np.flatnonzero(alpha.max(0) > 0.3)
    seven = alpha[:, : columns[0] + (columns[-1] - columns[0]) // 4]  # a view of the first digit
    rows = np.flatnonzero(seven.max(1) > 0.3)
    seven[rows[0] + (rows[-1] - rows[0]) // 2: rows[0] + (rows[-1] - rows[0]) // 2 + 3] = 0  # break its stroke
    _, labels = cv2.connectedComponents((alpha > 0.4).astype(np.uint8))
    assert labels.max() == 4  # the 7 is in two pieces
    assert reader.read(on_paper(alpha)).text == "745"


def test_several_lines_are_read_line_by_line(reader, digits):
    top = ink_row(number(digits, "12", 3), [14])
    bottom = ink_row(number(digits, "907", 3), [14, 14])
    width = max(top.shape[1], bottom.shape[1])
    alpha = np.vstack([np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in (top, bottom)])
    reading = reader.read(on_paper(alpha))
    assert reading.text == "12\n907"
    assert [d.line for d in reading.digits] == [0, 0, 1, 1, 1]


def test_slight_rotation(reader, digits):
    picture = on_paper(ink_row(number(digits, "8052", 4), [16, 16, 16]))
    height, width = picture.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), 4, 1.0)
    rotated = cv2.warpAffine(picture, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
    assert reader.read(rotated).text == "8052"


def test_empty_and_digitless_pictures_read_as_nothing(reader):
    blank = on_paper(np.zeros((120, 300), np.float32), gradient=0.5, noise=0.03)
    specks = np.zeros((120, 300), np.float32)
    for x, y in [(30, 20), (200, 90), (260, 40)]:
        specks[y: y + 2, x: x + 2] = 1.0
    rules = []
    for thickness in (1, 3, 6):  # a ruled line alone: no digit height to scale it by (it read as 34-474 digits)
        rule = np.zeros((120, 300), np.float32)
        rule[60: 60 + thickness, 10:290] = 1.0
        rules.append(on_paper(rule))
    for picture in (blank, on_paper(specks), np.full((40, 40), 255, np.uint8), *rules):
        reading = reader.read(picture)
        assert reading == Reading("", ())


def test_small_digits_on_a_large_shaded_page_and_the_blank_page_alone(reader, digits):
    """Ink below 0.1% of the picture was not ink (these digits read as nothing, or as the band below), and paper
    darkening towards an edge left a band of false ink along it, read as a `1` on a blank page."""
    assert reader.read(on_paper(np.zeros((1000, 1000), np.float32), gradient=0.5, noise=0.02)).text == ""
    for text in ("7", "305"):
        row = ink_row(number(digits, text), [8] * (len(text) - 1), height=40)  # digits 32 px tall: 1/47 of the page
        alpha = np.zeros((1500, 2000), np.float32)
        alpha[700: 700 + row.shape[0], 900: 900 + row.shape[1]] = row
        assert reader.read(on_paper(alpha, gradient=0.4, noise=0.02)).text == text


def test_a_blot_is_not_a_digit_alone_or_beside_digits(reader, digits):
    """A blot of ink or dirt of 8 px or more (smaller parts are specks) set the digit height itself and was read as
    `8` or `0` on a blank page, or as one more digit beside a number. A blot is solid and about as thick as it is
    tall; no pen's stroke is."""
    rng = np.random.default_rng(0)
    for size in (8, 14, 30):
        for shape in ("disc", "ellipse", "irregular"):
            alpha = np.zeros((300, 400), np.float32)
            if shape == "disc":
                cv2.circle(alpha, (200, 150), size // 2, 1.0, -1)
            elif shape == "ellipse":
                cv2.ellipse(alpha, (200, 150), (size, size // 2), 20, 0, 360, 1.0, -1)
            else:
                angles = np.linspace(0, 2 * np.pi, 9)[:-1]
                radii = size / 2 * rng.uniform(0.5, 1.2, 8)
                corners = np.stack([200 + radii * np.cos(angles), 150 + radii * np.sin(angles)], 1)
                cv2.fillPoly(alpha, [corners.astype(np.int32)], 1.0)
            assert reader.read(on_paper(cv2.GaussianBlur(alpha, (0, 0), 0.7))).text == "", (size, shape)
    row = ink_row(number(digits, "47"), [16])
    cv2.circle(row, (row.shape[1] - 30, row.shape[0] // 2), 18, 1.0, -1)  # a blot as tall as the digits, beside them
    assert reader.read(on_paper(row)).text == "47"


def test_lit_paper_between_a_shadow_and_the_table_is_not_a_one(reader):
    """A sliver of lit paper caught between a strip of the table and a hand's shadow is lighter than everything
    around it: it counted as light ink (chalk on a board) and was read as a `1`. Light ink must also be lighter than
    the picture's paper at large, which here is the lit paper."""
    height, width, table, sliver = 600, 800, 30, 18
    shadow = np.zeros((height, width), np.float32)
    cv2.ellipse(shadow, (0, height // 2), (400, 420), 0, 0, 360, 1.0, -1)  # a hand reaching in from the left
    shadow[:, : table + sliver] = 0
    light = 1 - 0.4 * cv2.GaussianBlur(shadow, (0, 0), 3)
    page = paint(np.zeros((height, width), np.float32), light=light, noise=3, rng=np.random.default_rng(0))
    page[:, :table] = (np.array([120, 80, 50]) * light[:, :table, None]).astype(np.uint8)  # the table, in shade
    assert reader.read(page).text == ""


def hand_shadow(shape: tuple[int, int], centre: tuple[int, int], depth: float, softness: float) -> np.ndarray:
    """The light on a page (1: full) under a hand's shadow: an ellipse a quarter of the page wide from `centre`, taking
    `depth` of the light, its edge blurred by `softness` pixels."""
    height, width = shape
    shadow = np.zeros(shape, np.float32)
    cv2.ellipse(shadow, centre, (width // 4, height // 2), 15, 0, 360, 1.0, -1)
    return 1 - depth * cv2.GaussianBlur(shadow, (0, 0), softness)


def test_a_number_beside_or_on_a_hands_shadow_is_read(reader, digits):
    """The coarse pass's wide kernel cannot follow a hand's shadow and left its blurred edge as ink: one large part
    (or, with the digits on it, a part several digits tall) that set the working scale several times too small, so
    the number read as nothing. It now measures ink near steep edges only, steep against the picture's steepest."""
    height, width = 900, 1200
    light = hand_shadow((height, width), (width // 3, 0), depth=0.5, softness=10)  # a hand from the top
    for text in ("64", "7", "3805"):
        row = ink_row(number(digits, text), [8] * (len(text) - 1), height=30)  # digits 24 px tall
        for top, left in ((500, 700), (300, 600)):  # beside the shadow; across its edge
            alpha = np.zeros((height, width), np.float32)
            alpha[top: top + row.shape[0], left: left + row.shape[1]] = row
            page = paint(alpha, light=light, noise=4, rng=np.random.default_rng(0))
            assert reader.read(page).text == text, (text, top, left)


def test_noise_in_a_hands_shadow_is_not_read(reader, digits):
    """Dividing the contrast of dark ink by the paper's brightness, so that shaded ink reads like lit ink, amplified
    the sensor's noise in a deep shadow too: once the scale was right, the shade read as lines of digits. Ink must
    also stand out from the noise in grey levels."""
    height, width = 900, 1200
    light = hand_shadow((height, width), (400, height), depth=0.6, softness=15)  # a hand from the bottom
    row = ink_row(number(digits, "52"), [8], height=40)
    alpha = np.zeros((height, width), np.float32)
    alpha[100: 100 + row.shape[0], 900: 900 + row.shape[1]] = row
    page = paint(alpha, light=light, noise=6, rng=np.random.default_rng(0))
    _, jpeg = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert reader.read(cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)).text == "52"


def test_read_digits_accepts_a_run_dir_a_task_or_a_reader(reader, reader_run, digits):
    picture = on_paper(ink_row(number(digits, "36"), [16]))
    expected = reader.read(picture)
    assert dlzoo.read_digits(picture, reader_run) == expected
    assert dlzoo.read_digits(picture, reader.task).text == expected.text
    assert dlzoo.read_digits(cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY), reader).text == expected.text
    with pytest.raises(UserError, match="picture"):
        reader.read(np.zeros((5,), np.uint8))


def test_cli_reads_pictures_to_json_and_annotates(cli, reader_run, digits, tmp_path):
    first = write(tmp_path / "first.png", on_paper(ink_row(number(digits, "52"), [16])))
    second = write(tmp_path / "second.jpg", on_paper(ink_row(number(digits, "7"), [])))
    result = cli("read", reader_run, first, second, "--json", "--annotate", tmp_path / "annotated")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["path"] for r in records] == [str(first), str(second)]
    assert all(r["text"] and len(r["digits"]) == len(r["text"]) for r in records)
    for record, source in zip(records, (first, second), strict=True):
        annotated, original = cv2.imread(record["annotated"]), cv2.imread(str(source))
        factor = annotated.shape[0] // original.shape[0]  # small pictures are enlarged to keep marks readable
        assert factor >= 1 and annotated.shape == (original.shape[0] * factor, original.shape[1] * factor, 3)
    plain = cli("read", reader_run, first)
    assert plain.code == 0 and plain.out.startswith(f"{first}: ")
    before = first.read_bytes()  # annotations into the pictures' own folder would replace first.png
    assert_user_error(cli("read", reader_run, first, second, "--annotate", tmp_path), "write over the input picture")
    assert first.read_bytes() == before and not (tmp_path / "second.png").exists()


def test_cli_reads_every_picture_in_a_folder_as_predict_does(cli, reader_run, digits, tmp_path):
    # `dlzoo predict RUN FOLDER` took a folder's pictures, `dlzoo read` refused the folder.
    scans = tmp_path / "scans"
    (scans / "b").mkdir(parents=True)
    second = write(scans / "b" / "second.jpg", on_paper(ink_row(number(digits, "7"), [])))
    first = write(scans / "a.png", on_paper(ink_row(number(digits, "52"), [16])))
    (scans / "notes.txt").write_text("not a picture")
    result = cli("read", reader_run, scans, "--json")
    assert result.code == 0, result.err
    assert [json.loads(line)["path"] for line in result.out.splitlines()] == [str(first), str(second)]
    (tmp_path / "empty").mkdir()
    assert_user_error(cli("read", reader_run, tmp_path / "empty"), "holds no pictures", "to read")


def test_annotate_replaces_its_own_earlier_pictures_but_no_other_file(cli, reader_run, digits, tmp_path):
    """`--annotate DIR` names a folder, not its files: a user's own `first.png` there was replaced. It is refused
    before any reading; an annotation an earlier `read` wrote is replaced, so reading again just works."""
    first = write(tmp_path / "first.jpg", on_paper(ink_row(number(digits, "52"), [16])))
    second = write(tmp_path / "second.jpg", on_paper(ink_row(number(digits, "7"), [])))
    out = tmp_path / "annotated"
    assert cli("read", reader_run, first, "--annotate", out).code == 0
    assert cli("read", reader_run, first, "--annotate", out).code == 0  # its own earlier annotation: replaced
    (out / "second.png").write_bytes(second.read_bytes())  # a user's own picture, of another format even
    (out / "notes.png").mkdir()
    notes = write(tmp_path / "notes.jpg", on_paper(ink_row(number(digits, "3"), [])))
    result = cli("read", reader_run, first, second, notes, "--annotate", out)
    assert_user_error(result, f"--annotate {out} already holds second.png, notes.png", "move them")
    assert result.out == "" and (out / "second.png").read_bytes() == second.read_bytes()


def test_cli_corrupt_file_is_one_line_and_writes_nothing(cli, reader_run, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    out = tmp_path / "annotated"
    assert_user_error(cli("read", reader_run, corrupt, "--annotate", out), "corrupt.png")
    assert not out.exists()
    assert_user_error(cli("read", reader_run, tmp_path / "missing.png"), "not found")
    assert_user_error(cli("read", tmp_path, corrupt), "")


def test_corrupt_file_leaves_no_opencv_log_on_stderr(reader_run, tmp_path):
    """OpenCV logs a corrupt PNG's faults to the process's stderr, which only a real process shows (capsys does not
    see it): `read` and `predict` print dlzoo's one line and nothing else."""
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    for command in ("read", "predict"):
        assert_user_error(run_subprocess(command, reader_run, corrupt), "not a readable image", "corrupt.png")


def test_reader_refuses_a_run_that_is_not_a_digit_classifier(reader):
    class NotDigits:
        meta = {"classes": ["cat", "dog"], "preprocess": {"name": "resize"}}
        config = SimpleNamespace(recipe="pets")

        def logits(self, images):
            raise AssertionError

    with pytest.raises(UserError, match="not a pets run [(]its classes are cat, dog, not the digits 0-9[)]"):
        DigitReader(NotDigits())


def test_wrong_kinds_of_run_are_named_in_cli_terms(cli, tmp_path, monkeypatch):
    """A generative run has the digits' classes but reads nothing; a line run is no --classifier: each message says
    which run is wrong and what it is, not a Python class to use instead. `bench reader` says so before it trains."""
    vae, lines = tmp_path / "vae", tmp_path / "lines"
    assert cli("train", "vae-digits", "data.limit=64", "data.batch_size=32", "trainer.epochs=1", "iw_samples=1",
               "trainer.device=cpu", "--out", vae).code == 0
    assert cli("train", "digit-lines", "data.limit=400", "data.batch_size=16", "data.lines_per_epoch=32",
               "data.eval_lines=8", "trainer.epochs=1", "trainer.device=cpu", "model.args.width=4",
               "model.args.hidden=8", "--out", lines).code == 0
    picture = write(tmp_path / "digit.png", np.pad(255 - held_out_digits(per_class=1)[0][0], 10,
                                                    constant_values=255))
    wrong_reader = cli("read", vae, picture)
    assert_user_error(wrong_reader, "needs a digits run", "not a vae-digits run (it does not classify pictures)")
    assert "classes" not in wrong_reader.err
    for classifier, what in ((vae, "a vae-digits run"), (lines, "a digit-lines run (a line recognizer)")):
        result = cli("read", lines, picture, "--classifier", classifier)
        assert_user_error(result, f"--classifier {classifier} must be a digits run", f"not {what}")
        assert "LineReader" not in result.err
    import dlzoo.bench.reader as reader_bench

    def trains(*args, **kwargs):
        raise AssertionError("trained a digit-lines run for a classifier_run it then refused")

    monkeypatch.setattr(reader_bench, "train_recipe", trains)
    with pytest.raises(UserError, match=f"classifier_run {vae} must be a digits run .*not a vae-digits run"):
        reader_bench.run(pictures=1, recipe="digit-lines", classifier_run=str(vae))


def test_cuts_never_cross_so_atoms_partition_overlapping_digits():
    """Blobs of 2-3 overlapping held-out digits: consecutive cuts must not cross, or the ink between them falls in
    two atoms (counted twice in areas and boxes, and owned in `labels` by whichever was written last)."""
    images = load_image_arrays("mnist5k").test_images
    rng = np.random.default_rng(0)
    for _ in range(100):
        count = int(rng.integers(2, 4))
        canvas = np.zeros((40, 40 * count), np.float32)
        for index, pick in enumerate(rng.integers(0, len(images), count)):
            left = int(index * rng.uniform(18, 26))  # digits 40 px wide, 14-22 px overlapped
            digit = cv2.resize(images[pick], (40, 40)).astype(np.float32) / 255
            np.maximum(canvas[:, left: left + 40], digit, out=canvas[:, left: left + 40])
        mask = np.pad(canvas, 10) > 0.4
        parts, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        for component in range(1, parts):
            x, y, width, height = stats[component, :4]
            cuts = find_cuts(components[y: y + height, x: x + width] == component, 40.0, stroke_width(mask))
            assert all((left.path <= right.path).all() for left, right in itertools.pairwise(cuts))
        segmentation = segment(mask)
        atoms = [atom for line in segmentation.lines for atom in line.atoms]
        for atom in atoms:
            ys, xs = np.nonzero(segmentation.labels == atom.label)
            assert atom.area == len(ys)
            assert atom.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert sum(atom.area for atom in atoms) == np.count_nonzero(segmentation.labels)
        assert not (segmentation.labels.astype(bool) & ~mask).any()


@pytest.mark.parametrize("module", ["compose_numbers.py", "pages.py"])
def test_benchmark_pictures_are_drawn_independently_of_the_reader(module):
    source = Path(__file__).resolve().parents[1] / "src" / "dlzoo" / "bench" / module
    imported = {node.module for node in ast.walk(ast.parse(source.read_text())) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(ast.parse(source.read_text())) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert not any(name and name.startswith("dlzoo") for name in imported), imported


def test_composer_touching_set_really_touches():
    from dlzoo.bench.compose_numbers import compose_number

    images, labels = held_out_digits(per_class=10)
    rng = np.random.default_rng(0)
    for _ in range(10):
        composed = compose_number(images, labels, rng, touching=True)
        assert composed.touching_pairs >= 1 and 2 <= len(composed.text) <= 8
        assert len(composed.boxes) == len(composed.text) and composed.owner.shape == composed.image.shape[:2]
        apart = compose_number(images, labels, rng, touching=False)
        assert apart.touching_pairs == 0 and 1 <= len(apart.text) <= 8


def test_reader_benchmark_reports_both_sets(reader_run):
    from dlzoo.bench import get_benchmark

    result = get_benchmark("reader")(pictures=4, run_dir=str(reader_run))
    for name in ("apart", "touching"):
        assert result[name]["pictures"] == 4 and 0 <= result[name]["exact_read_rate"] <= 1
        assert 0 <= result[name]["digit_accuracy"] <= 1
    assert result["touching"]["touching_pairs"] >= 4
    assert set(result["targets"]) == {"apart exact >= 0.95", "touching exact >= 0.85"}


def test_reader_limits_benchmark_reads_a_big_digit_and_counts_blank_pages(reader_run):
    from dlzoo.bench import get_benchmark

    limits = get_benchmark("reader-limits")
    result = limits(pictures=1, sizes=[10], pages=["white-1000"], layouts=["lone"], blank=1,
                    blank_kinds=["plain", "gradient"], run_dir=str(reader_run))
    assert result["benchmark"] == "reader-limits" and result["sizes"] == ["1/10"] and result["pictures"] == 1
    page = result["pages"]["white-1000"]
    assert page["size"] == [1000, 1000] and page["effects"] == []
    assert page["layouts"] == {"lone": {"read": {"1/10": 1}, "smallest": "1/10", "misread": []}}
    assert result["blank"] == {"kinds": 2, "pages": 4, "read_digits": 0, "misread": []}
    for options, message in (({"pages": ["whit-1000"]}, "unknown page kind 'whit-1000'; did you mean 'white-1000'"),
                             ({"sizes": [2]}, "frames of 1/2 of the short side .* do not fit"),
                             ({"sizes": [0]}, "sizes must be")):
        with pytest.raises(UserError, match=message):
            limits(run_dir=str(reader_run), **options)


def test_the_scorer_fit_gives_weights_for_every_feature_from_training_digits(reader_run):
    """`python -m dlzoo.reader.fit RUN` (the tool that fitted grouping.py's constants) still runs end to end: a
    weight for every candidate feature, and a bonus chosen from its grid."""
    from dlzoo.reader.fit import fit
    from dlzoo.reader.grouping import FEATURES

    result = fit(reader_run, pictures=12, seed=7)
    assert list(result["weights"]) == list(FEATURES)
    assert all(np.isfinite(weight) for weight in result["weights"].values())
    assert result["digit_bonus"] in result["by_bonus"] and 0 < result["whole_fraction"] < 1
    apart = result["exact_read_rate"][0]
    assert apart >= max(rates[0] for rates in result["by_bonus"].values()) - 0.01  # the rule it states


def test_the_scorer_fit_refuses_what_it_cannot_fit_in_one_line(reader_run, tmp_path, capsys):
    from dlzoo.reader.fit import main as fit_main

    for args, fragment in (([str(tmp_path / "missing")], "run directory not found"),
                           ([str(reader_run), "--pictures", "0"], "--pictures must be at least 1")):
        assert fit_main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("python -m dlzoo.reader.fit: error: ") and fragment in err and err.count("\n") == 1


def test_reader_limits_on_the_command_line_an_empty_pages_reads_blank_pages_alone(cli, reader_run):
    result = cli("bench", "reader-limits", f"run_dir={reader_run}", "pages=", "blank=1", "blank_kinds=plain")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["pages"] == {} and report["blank"]["pages"] == 2
