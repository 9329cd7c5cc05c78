"""Every ```python block of every docs/ chapter runs, so the course cannot drift from
the code. Blocks of one chapter run in order in one namespace (a chapter builds on its
earlier blocks), inside a fresh temporary working directory."""

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parents[1] / "docs"
CHAPTERS = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_docs_have_chapters():
    """The course has an index and at least one chapter with code."""
    assert (DOCS / "index.md").exists()
    assert any(BLOCK.search(p.read_text()) for p in CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_code_runs(chapter, tmp_path, monkeypatch):
    """Each chapter's python blocks run top to bottom without error."""
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{chapter.stem}"}
    for i, match in enumerate(BLOCK.finditer(chapter.read_text())):
        code = compile(match.group(1), f"{chapter.name}[block {i}]", "exec")
        exec(code, namespace)
