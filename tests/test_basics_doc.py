"""docs/basics.md is a tutorial whose Python blocks all run: in order, in one namespace, in an empty folder."""

from conftest import ROOT
from snippets import python_blocks, run_block

DOC = ROOT / "docs" / "basics.md"


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
        run_block(DOC, line, code, namespace)
    assert (tmp_path / "runs" / "tiny-digits" / "summary.json").is_file()


def test_the_extractor_finds_blocks_and_their_lines():
    text = "intro\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (9, "y = 2\n")]


def test_the_extractor_keeps_to_a_section_when_asked():
    text = "```python\na = 0\n```\n## Export\n```python\nx = 1\n```\n## Export more\n```python\ny = 2\n```\n"
    assert python_blocks(text, "Export") == [(6, "x = 1\n")]
    assert python_blocks(text, "Export more") == [(10, "y = 2\n")]
