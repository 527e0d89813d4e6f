"""docs/basics.md is a tutorial whose Python blocks all run: in order, in one namespace, in an empty folder."""

import re

from conftest import ROOT

DOC = ROOT / "docs" / "basics.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block."""
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in BLOCK.finditer(text)]


def test_every_python_block_runs_in_order(tmp_path, monkeypatch):
    text = DOC.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert len(blocks) >= 15
    for heading in ("Building models", "Parameter access", "Initialisation", "Sharing", "Saving and loading",
                    "Whole dlzoo runs", "GPU", "torchrun"):
        assert heading in text, heading
    monkeypatch.chdir(tmp_path)  # files the tutorial writes land here
    namespace: dict = {"__name__": "basics"}
    for line, code in blocks:
        # Compiled with padding so a traceback points at the line of docs/basics.md that failed.
        exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), namespace)
    assert (tmp_path / "runs" / "tiny-digits" / "summary.json").is_file()


def test_the_extractor_finds_blocks_and_their_lines():
    text = "intro\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (9, "y = 2\n")]
