"""The runnable example at the top of docs/leakage.md runs as written and shows what it
says it shows."""

import re
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[3] / "docs" / "leakage.md"

torch.set_num_threads(1)


def test_docs_example_runs(capsys):
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    exec(compile(block, str(DOC), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    plain = float(out[0].split(":")[1])
    masked = float(out[1].split(":")[1])
    assert plain >= 20.0 and masked < 12.0
