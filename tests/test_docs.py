"""The course cannot drift from the code.

- Every ```python block of every page under docs/ runs, executed ones (```python
  exec="on" ..., which markdown-exec runs when the site is built) and plain ones alike.
  The blocks of one page run in order in one namespace (a chapter builds on its earlier
  blocks), inside a fresh temporary working directory, as docs/_hooks.py runs them at
  build time.
- The site's navigation lists every chapter and one API page per module, and the pages
  never point the reader at files they do not have.
- `mkdocs build --strict` passes with no warning (slow: it executes every chapter once
  more), and a crawler finds no broken internal link or anchor and nothing loaded from
  another host in the built site; math renders offline (in headless Chromium, when it is
  installed).
- Every figure in docs/figures is used.
"""

import base64
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

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


def test_every_figure_is_used():
    """Every file in docs/figures is shown by some page or written by some script: a
    figure nothing refers to is stale and goes."""
    texts = [p.read_text() for p in DOCS.rglob("*.md")]
    texts += [p.read_text() for d in ("examples", "pathmnist", "benchmarks", "docs")
              for p in (ROOT / d).rglob("*.py")]  # fmt: skip
    for figure in sorted((DOCS / "figures").iterdir()):
        assert any(f"figures/{figure.name}" in t for t in texts), f"remove {figure.name}"


def test_every_questionnaire_has_its_answers():
    """Each chapter ends with a questionnaire of at least three questions, and
    docs/solutions/questionnaires.md answers every one of them (one numbered answer per
    numbered question), chapter by chapter."""
    answers = (DOCS / "solutions" / "questionnaires.md").read_text()
    sections = dict(re.findall(r"^## Chapter (\d+):[^\n]*\n(.*?)(?=^## |\Z)", answers, re.S | re.M))
    for chapter in CHAPTERS:
        questions = chapter.read_text().split("## Questionnaire", 1)[-1]
        asked = len(re.findall(r"^\d+\. ", questions, re.M))
        number = str(int(chapter.name[:2]))
        assert asked >= 3, f"{chapter.name} has no questionnaire"
        assert number in sections, f"answer chapter {number}'s questionnaire"
        assert len(re.findall(r"^\d+\. ", sections[number], re.M)) == asked, chapter.name


def test_no_deprecated_markdown_exec_options():
    """markdown-exec renamed source="material-block" to source="block"; the old name warns
    at every build."""
    for page in PAGES:
        assert 'source="material-block"' not in page.read_text(), page.name


class _PageLinks(HTMLParser):
    """The ids a page defines and the (tag, attribute, rel, url) of every link it makes."""

    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append((tag, key, attrs.get("rel") or "", attrs[key]))


def crawl(site: Path) -> dict[Path, _PageLinks]:
    """Parse every built HTML page of the site."""
    pages = {}
    for page in sorted(site.rglob("*.html")):
        parser = _PageLinks()
        parser.feed(page.read_text(encoding="utf-8"))
        pages[page] = parser
    return pages


def link_problems(site: Path) -> list[str]:
    """Every internal link whose file or #anchor is missing, and every script, stylesheet,
    image or frame loaded from another host, as "page: what is wrong"."""
    site = site.resolve()
    pages, problems = crawl(site), []
    for page, parsed in pages.items():
        where = page.relative_to(site).as_posix()
        for tag, key, rel, url in parsed.links:
            parts = urlsplit(url)
            if parts.scheme in ("mailto", "data", "javascript"):
                continue
            if parts.scheme or parts.netloc:
                # A link a reader follows may leave the site; nothing the page loads may.
                if not (tag == "a" or (tag == "link" and "stylesheet" not in rel and
                                       "icon" not in rel)):  # fmt: skip
                    problems.append(f"{where}: <{tag} {key}> loads {url} from another host")
                continue
            # A path from the root ("/x.html", only in 404.html, which a server sends from
            # any folder) starts at the site's root.
            base = site if parts.path.startswith("/") else page.parent
            target = (base / unquote(parts.path).lstrip("/")).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{where}: {url} -> no file {target}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{where}: {url} -> no #{parts.fragment} in {target.name}")
    return problems


def test_link_checker_finds_broken_links_and_foreign_scripts(tmp_path):
    """The crawler itself: a missing page, a missing anchor and a script from another host
    are found; good links (a page, an anchor on it, a folder's index) are not."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_text('<h1 id="top">x</h1>')
    (tmp_path / "a.html").write_text(
        '<a href="sub/">ok</a><a href="sub/index.html#top">ok</a><a href="#here" id="here">'
        '<a href="https://example.org/">a link out is fine</a><img src="data:image/png;base64,">'
        '<a href="missing.html">x</a><a href="sub/index.html#nowhere">x</a>'
        '<script src="https://cdn.example.org/x.js"></script>'
        '<link rel="stylesheet" href="https://fonts.example.org/y.css">'
    )
    problems = link_problems(tmp_path)
    assert len(problems) == 4, problems
    assert "missing.html" in problems[0] and "#nowhere" in problems[1]
    assert "cdn.example.org" in problems[2] and "fonts.example.org" in problems[3]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The site, built once with `mkdocs build --strict` (it runs every chapter's code),
    and what the build printed."""
    site = tmp_path_factory.mktemp("built") / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return site, result.stdout + result.stderr


@pytest.mark.slow
def test_mkdocs_build_strict(built_site):
    """`mkdocs build --strict` passes without a warning: every executed block ran, every
    API page rendered; the site has every chapter, the API pages and the figures."""
    site, printed = built_site
    warnings = [line for line in printed.splitlines() if re.search(r"warn", line, re.I)]
    assert not warnings, warnings
    for chapter in CHAPTERS:
        assert (site / chapter.with_suffix(".html").name).exists(), chapter.name
    assert (site / "api" / "model" / "resnet.html").exists()
    assert (site / "search" / "search_index.json").exists()
    for figure in (DOCS / "figures").glob("*.png"):
        assert (site / "figures" / figure.name).exists(), figure.name


@pytest.mark.slow
def test_built_site_links_resolve_and_nothing_loads_from_another_host(built_site):
    """Crawl every built page: each internal href/src names a file that exists (and an
    anchor on it that exists), and no script, stylesheet or image comes from another host,
    so the site works from the file system with no network. The API index links every
    module's page."""
    site, _ = built_site
    assert link_problems(site) == []
    api_index = crawl(site)[(site / "api" / "index.html").resolve()]
    module_links = {u for tag, _, _, u in api_index.links if tag == "a" and u.endswith(".html")}
    assert len(module_links) >= len(list((ROOT / "pathmnist").rglob("*.py"))) // 2


@pytest.mark.slow
def test_figures_drawn_by_chapters_are_pngs(built_site):
    """Chapters 3-6 draw their figures at build time as inline PNG images: each page has
    at least one, and each decodes to a PNG."""
    site, _ = built_site
    for number in (3, 4, 5, 6):
        (page,) = site.glob(f"{number:02d}_*.html")
        images = re.findall(r'src="data:image/png;base64,([^"]+)"', page.read_text())
        assert images, page.name
        for data in images:
            assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n"), page.name


@pytest.mark.slow
def test_math_renders_offline_in_chromium(built_site):
    """In headless Chromium with every connection refused, a chapter's math is typeset by
    the site's own KaTeX, without an error."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed")
    site, _ = built_site
    with_math = [p for p in sorted(site.glob("[0-9][0-9]_*.html")) if "arithmatex" in p.read_text()]
    page = with_math[0]
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    dom = result.stdout
    assert 'class="katex"' in dom, result.stderr[-2000:]
    assert "katex-error" not in dom
