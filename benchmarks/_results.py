"""Write one benchmark's section of benchmarks/RESULTS.md, and name the machine it ran on.

Each benchmark owns the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`,
so benchmarks can be rerun one at a time without touching each other's numbers, and the
hand-written "how to read this" text above the first section stays as it is. A new file
starts with HEADER. The file is replaced atomically (pathmnist.files.write_text).
"""

import datetime
import os
import platform
import re
from pathlib import Path

import torch

from pathmnist.files import write_text

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\n"
    "Every number is a ratio measured side by side in one run against the reference named\n"
    "in its section; rerun a section with the command it names.\n"
)


def cpu_model() -> str:
    """The CPU's "model name" from /proc/cpuinfo (the platform's name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cores() -> int:
    """The cores this process may run on (its affinity on Linux), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine() -> str:
    """One line naming the machine: CPU model, core count, torch version, GPU if any."""
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{cpu_model()}, {cores()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads){gpu}"
    )


def write_section(name: str, title: str, body: str, path=RESULTS, stamp: bool = True) -> Path:
    """Replace (or append) the section `name` of the results file at `path` with `body`;
    `stamp` adds a line with the date and the machine under the title."""
    path = Path(path)
    line = f"_Measured {datetime.date.today().isoformat()} on {machine()}._\n\n" if stamp else ""
    section = f"<!-- bench:{name} -->\n## {title}\n\n{line}{body.strip()}\n<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    return write_text(path, text.rstrip() + "\n")
