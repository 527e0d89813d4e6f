"""dlzoo used as a library: the documented Python calls, and what they say when called wrongly."""

import subprocess
import sys

from conftest import ROOT


def test_subpackages_are_reached_from_the_package_alone():
    """docs/reading.md writes `import dlzoo` then `dlzoo.reader.load_reader(...)`: a fresh interpreter finds it,
    and `import dlzoo` stays cheap (torch is loaded on first use, not at import)."""
    code = ("import sys, dlzoo; assert 'torch' not in sys.modules; assert 'reader' in dir(dlzoo); "
            "print(dlzoo.reader.load_reader.__name__, dlzoo.runs.open_run.__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["load_reader", "open_run"]
