"""Every ```python block of README.md and docs/*.md runs as written.

Blocks of one file share a namespace, in order (a later block may use names an earlier
one defined), and run in a temporary working folder. A block preceded by the line
``<!-- no-run -->`` is skipped: use it only for examples that need a long run, a GPU or
the network, and say why next to it. New pages under docs/ are picked up automatically.
"""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
NO_RUN = "<!-- no-run -->"


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line number, code, skipped) of each ```python block."""
    out = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        out.append((line, m.group(1), before == NO_RUN))
    return out


def test_block_extraction():
    text = "a\n```python\nx = 1\n```\n<!-- no-run -->\n```python\ny = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n", False), (6, "y = 2\n", True)]


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_page_examples_run(page, tmp_path, monkeypatch):
    blocks = [b for b in python_blocks(page.read_text(encoding="utf-8")) if not b[2]]
    if not blocks:
        pytest.skip("no runnable python blocks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRIVCRYPT_NO_PROGRESS", "1")
    ns: dict = {"__name__": f"doc_{page.stem}"}
    for line, code, _ in blocks:
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), ns)
        except Exception as exc:  # name the block in the failure
            raise AssertionError(f"{page.name}, block at line {line}: {type(exc).__name__}: {exc}") from exc
    assert os.getcwd() == str(tmp_path)
