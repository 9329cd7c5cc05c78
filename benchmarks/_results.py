"""Write one benchmark's section of benchmarks/RESULTS.md.

Each benchmark owns the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`,
so benchmarks can be rerun one at a time without touching each other's numbers. The
section is stamped with the machine and the date, and the file is replaced atomically
(temp file, then rename).
"""

import datetime
import os
import platform
import re
from pathlib import Path

import torch

from pathmnist.io import write_text

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\n"
    "Every number is a ratio measured side by side in one run against the reference named\n"
    "in its section; rerun a section with `python benchmarks/<script>.py`.\n"
)


def machine() -> str:
    """One line naming the machine: CPU model, core count, torch version, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads){gpu}"
    )


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the section `name` of RESULTS.md with `body`."""
    stamp = f"{datetime.date.today().isoformat()} on {machine()}"
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n_Measured {stamp}._\n\n{body.strip()}\n"
        f"<!-- /bench:{name} -->"
    )
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    write_text(RESULTS, text.rstrip() + "\n")
