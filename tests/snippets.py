"""The ```python blocks of the docs, found by their line in the doc and run so that a traceback names that line."""

from __future__ import annotations

import re
from pathlib import Path

BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^## (.*)$", re.MULTILINE)


def python_blocks(text: str, section: str | None = None) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block, or of those under the heading `## {section}` only."""
    start, end = 0, len(text)
    if section is not None:
        headings = list(HEADING.finditer(text))
        places = [i for i, heading in enumerate(headings) if heading.group(1).strip() == section]
        assert len(places) == 1, f"{len(places)} headings '## {section}'"
        start = headings[places[0]].end()
        end = headings[places[0] + 1].start() if places[0] + 1 < len(headings) else len(text)
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1))
            for match in BLOCK.finditer(text) if start <= match.start() < end]


def run_block(doc: Path, line: int, code: str, namespace: dict) -> None:
    """Run one block in `namespace`; compiled with padding so a traceback points at the doc's own line."""
    exec(compile("\n" * (line - 1) + code, str(doc), "exec"), namespace)
