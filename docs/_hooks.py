"""MkDocs hook: run each page's executed code blocks (markdown-exec) in a fresh temporary
folder, as tests/test_docs.py runs them, so a build never writes into the repository.

Registered in mkdocs.yml under `hooks:`; excluded from the site by `exclude_docs`.
"""

import os
import shutil
import tempfile

_state = {}


def on_page_markdown(markdown, page, config, files):
    """Before the page's Markdown becomes HTML (when its blocks run): enter a temp folder."""
    _state["cwd"] = os.getcwd()
    _state["tmp"] = tempfile.mkdtemp(prefix="pathmnist-docs-")
    os.chdir(_state["tmp"])
    return markdown


def on_page_content(html, page, config, files):
    """After the conversion: back to where the build started, and remove the folder."""
    os.chdir(_state.pop("cwd"))
    shutil.rmtree(_state.pop("tmp"), ignore_errors=True)
    return html
