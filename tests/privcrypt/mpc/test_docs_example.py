"""The runnable examples in docs/mpc.md run as written."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "mpc.md"


def test_docs_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "caught" in out and "[ 3.5  -1.5  -3.75]" in out
