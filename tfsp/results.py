"""Results files: written atomically, stamped with the code revision that produced them."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict


def git_revision() -> str:
    """HEAD of the checkout tfsp runs from, with "-dirty" if tracked files differ; "unknown" outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def atomic_write_text(path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, content: Dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(content, indent=2, sort_keys=False) + "\n")


def read_json(path) -> Dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def machine() -> Dict[str, Any]:
    """What the numbers were measured on: CPUs, load average (other work slows timings), versions."""
    import keras
    import tensorflow as tf

    return {"cpus": os.cpu_count(), "load_average_1_5_15min": os.getloadavg(),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def command_line(argv) -> str:
    """The command as a user would type it: `python -m tfsp.launch ...` rather than the module's path."""
    import shlex
    argv = list(argv)
    program = shlex.quote(argv[0]) if argv else ""
    if argv and argv[0].endswith(("tfsp/launch.py", "tfsp/report.py", "tfsp/figures.py")):
        program = "python -m tfsp." + Path(argv[0]).stem
    return " ".join([program, *(shlex.quote(a) for a in argv[1:])])
