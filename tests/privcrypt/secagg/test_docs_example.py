"""The runnable example at the top of docs/secagg.md runs as written."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "secagg.md"


def test_docs_example_runs(capsys):
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    exec(compile(block, str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "[1, 2, 3, 4, 6" in out
