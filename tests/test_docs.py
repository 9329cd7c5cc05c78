"""The course cannot drift from the code.

- Every ```python block of every page under docs/ runs, executed ones (```python
  exec="on" ..., which markdown-exec runs when the site is built) and plain ones alike.
  The blocks of one page run in order in one namespace (a chapter builds on its earlier
  blocks), inside a fresh temporary working directory, as docs/_hooks.py runs them at
  build time.
- The site's navigation lists every chapter and one API page per module, and the pages
  never point the reader at files they do not have.
- `mkdocs build --strict` passes (slow: it executes every chapter once more).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The site's pages: not the worked solutions, nor the runs' own report.md files (both
# excluded from the site in mkdocs.yml).
PAGES = sorted(
    p
    for p in DOCS.rglob("*.md")
    if "solutions" not in p.parts and not (p.parent.parent.name == "results")
)
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]_*.md"))
# A python fence with or without options: ```python or ```python exec="on" session="x".
BLOCK = re.compile(r"^```python(?:[ \t][^\n]*)?\n(.*?)^```", re.S | re.M)
NAV_ENTRY = re.compile(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", re.M)


def nav_pages() -> list[str]:
    """The .md paths that mkdocs.yml's nav lists, in order."""
    return NAV_ENTRY.findall((ROOT / "mkdocs.yml").read_text())


def test_docs_have_chapters():
    """The course has an index and at least one chapter with code."""
    assert (DOCS / "index.md").exists()
    assert any(BLOCK.search(p.read_text()) for p in CHAPTERS)


def test_block_pattern_finds_executed_blocks():
    """The pattern takes ```python blocks with markdown-exec options too, and nothing else."""
    text = (
        '```python exec="on" session="s"\nprint(1)\n```\n'
        "```pycon\n>>> 2\n```\n"
        "```python\nx = 3\n```\n"
    )
    assert [m.group(1) for m in BLOCK.finditer(text)] == ["print(1)\n", "x = 3\n"]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_runs(page, tmp_path, monkeypatch):
    """Each page's python blocks run top to bottom without error."""
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for i, match in enumerate(BLOCK.finditer(page.read_text())):
        code = compile(match.group(1), f"{page.relative_to(DOCS)}[block {i}]", "exec")
        exec(code, namespace)


def test_nav_lists_every_chapter_in_order():
    """Chapters 00, 01, ... appear in the nav in their numbered order, none missing, then
    the API reference."""
    listed = nav_pages()
    chapters = [p for p in listed if re.fullmatch(r"\d\d_\w+\.md", p)]
    assert chapters == sorted(chapters)
    assert [int(p[:2]) for p in chapters] == list(range(len(CHAPTERS)))
    assert {p.name for p in CHAPTERS} <= set(chapters)


def test_every_module_has_an_api_page():
    """Each pathmnist module has docs/api/<stage>/<module>.md with its `::: pathmnist...`
    directive, listed in the nav and linked from the API index: a new module gets its page
    in the same change."""
    package = ROOT / "pathmnist"
    listed = set(nav_pages())
    index = (DOCS / "api" / "index.md").read_text()
    for path in sorted(package.rglob("*.py")):
        if path.stem == "__init__":
            continue
        rel = path.relative_to(package).with_suffix("")
        dotted = "pathmnist." + ".".join(rel.parts)
        page = DOCS / "api" / rel.with_suffix(".md")
        assert page.exists(), f"add {page.relative_to(ROOT)} with '::: {dotted}'"
        assert f"::: {dotted}" in page.read_text()
        assert f"api/{rel.as_posix()}.md" in listed, f"list api/{rel.as_posix()}.md in the nav"
        assert f"(`{dotted}`)" in index or f"[`{dotted}`]({rel.as_posix()}.md)" in index, (
            f"link {dotted} from docs/api/index.md"
        )


def test_pages_do_not_send_the_reader_to_files_they_lack():
    """No page (nor the README) points at the source project's file: the course tells it
    in its own words (chapter 0)."""
    for page in [*PAGES, ROOT / "README.md"]:
        assert "shared/seed" not in page.read_text(), page


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    """`mkdocs build --strict` passes: every executed block ran, every link and anchor
    resolves, every API page renders; the site has every chapter and the figures."""
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for chapter in CHAPTERS:
        assert (site / chapter.with_suffix(".html").name).exists(), chapter.name
    assert (site / "api" / "resnet.html").exists()
    assert (site / "search" / "search_index.json").exists()
    for figure in (DOCS / "figures").glob("*.png"):
        assert (site / "figures" / figure.name).exists(), figure.name
