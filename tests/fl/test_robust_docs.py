"""The runnable example at the top of docs/robust.md runs as written and prints what the
comments say."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "robust.md"


def test_docs_example_runs(capsys):
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    exec(compile(block, str(DOC), "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert float(lines[0]) < 0  # the mean has the wrong sign
    assert lines[1].startswith("[0 2 4 6]") and abs(float(lines[1].split()[-1]) - 0.1) < 0.01
    assert lines[2] == "[8, 9]"
    assert lines[3] == "[0, 2, 4, 6] (10, 10)"  # same selection on shares
