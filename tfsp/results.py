"""Results files: written atomically, stamped with the code revision that produced them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple


REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout tfsp runs from; recorded commands are written as run from here."""


def git_revision() -> str:
    """HEAD of the checkout tfsp runs from, with "-dirty" if tracked files differ; "unknown" outside git."""
    root = REPO_ROOT
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def default_mode(directory: bool) -> int:
    """The permissions open() / mkdir() would give a new file or folder under the current umask
    (0666 / 0777 & ~umask); tempfile's mkstemp / mkdtemp make theirs owner-only."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


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
        os.chmod(tmp, default_mode(directory=False))  # mkstemp's 0600 would hide it from other users
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


BFLOAT16_CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16")
"""CPU features that decide whether bfloat16 is faster than float32 (AMX tiles make it ~3x)."""


def cpu_description(cpuinfo_path: str = "/proc/cpuinfo") -> Dict[str, Any]:
    """The CPU's model name and which of BFLOAT16_CPU_FLAGS it has ({} where unreadable)."""
    try:
        with open(cpuinfo_path) as f:
            text = f.read()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name", ""),
            "bfloat16_features": [flag for flag in BFLOAT16_CPU_FLAGS if flag in flags]}


def machine() -> Dict[str, Any]:
    """What the numbers were measured on: CPUs, load average (other work slows timings), versions."""
    import keras
    import tensorflow as tf

    return {"cpus": os.cpu_count(), "load_average_1_5_15min": os.getloadavg(), **cpu_description(),
            "tensorflow": tf.__version__, "keras": keras.__version__}


PATH_FLAGS = ("data_dir", "model_dir", "results_dir", "arff", "xml", "export_dir", "output")
"""Flags whose values are paths, rewritten in recorded commands (see portable_path)."""
DATA_PATH_FLAGS = ("data_dir", "arff", "xml")
PATH_SET_KEYS = {"data.data_dir": "data_dir", "data.arff": "arff", "data.xml": "xml"}
"""--set keys whose values are paths, and the flag each is like."""
DATA_DIR_VARIABLE = "$TFSP_DATA_DIR"


def portable_path(path, data: bool = False, cwd=None, environ=None) -> Tuple[str, bool]:
    """(path as a command run from the repository root writes it, whether it names the same
    place on another machine): relative to the repository root if inside it; for data paths
    (`data`), "$TFSP_DATA_DIR/..." if under the folder that variable names; "../shared/data/..."
    if under the shared data folder beside the repository; else absolute, and not portable."""
    cwd = os.getcwd() if cwd is None else str(cwd)
    environ = os.environ if environ is None else environ
    absolute = os.path.normpath(os.path.join(cwd, os.path.expanduser(str(path))))

    def inside(base):
        relative = os.path.relpath(absolute, os.path.normpath(os.path.join(cwd, base)))
        return None if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative

    relative = inside(REPO_ROOT)
    if relative is not None:
        return relative, True
    if data and environ.get(DATA_DIR_VARIABLE[1:]):
        relative = inside(os.path.expanduser(environ[DATA_DIR_VARIABLE[1:]]))
        if relative is not None:
            return DATA_DIR_VARIABLE + ("" if relative == "." else "/" + relative), True
    relative = inside(REPO_ROOT.parent / "shared" / "data")
    if relative is not None:
        return os.path.normpath(os.path.join(os.pardir, "shared", "data", relative)), True
    return absolute, False


def _shell_word(path: str) -> str:
    """A portable_path quoted for the shell, leaving $TFSP_DATA_DIR to be expanded."""
    if path.startswith(DATA_DIR_VARIABLE):
        rest = re.sub(r'(["$`\\])', r"\\\1", path[len(DATA_DIR_VARIABLE):])
        return f'"{DATA_DIR_VARIABLE}{rest}"'
    return shlex.quote(path)


def portable_command(argv, implied: Optional[Dict[str, str]] = None, cwd=None, environ=None) -> Dict[str, Any]:
    """The record of the command that ran: {"command", "command_portable", "command_runs_from"}.

    The command is written as typed from the repository root (`python -m tfsp.launch ...`, path
    flags and path --set values rewritten by portable_path), so it reruns the same run on anyone's
    checkout; command_portable is false if a path is outside the repository and the data folders.
    `implied`: path flags left at a default relative to the working directory (e.g. --model_dir),
    written out when that is not the repository root."""
    cwd = os.getcwd() if cwd is None else str(cwd)
    argv = list(argv)
    program = shlex.quote(argv[0]) if argv else ""
    if argv and Path(argv[0]).parent.name == "tfsp" and argv[0].endswith(".py"):
        program = "python -m tfsp." + Path(argv[0]).stem
    elif argv and argv[0].endswith(".py"):
        program = "python " + shlex.quote(portable_path(argv[0], cwd=cwd, environ=environ)[0])
    words, portable = [program], True

    def path_word(value, flag):
        nonlocal portable
        if not value:
            return shlex.quote(value)
        path, same_place = portable_path(value, data=flag in DATA_PATH_FLAGS, cwd=cwd, environ=environ)
        portable = portable and same_place
        return _shell_word(path)

    args = argv[1:]
    given = set()
    i = 0
    while i < len(args):
        match = re.fullmatch(r"(--?)(\w+)(?:=(.*))?", args[i], re.S)
        name = match.group(2) if match else None
        if name in PATH_FLAGS or name == "set":
            given.add(name)
            value = match.group(3)
            separator = "="
            if value is None and i + 1 < len(args):  # --flag value
                i, value, separator = i + 1, args[i + 1], " "
            if value is None:
                words.append(shlex.quote(args[i]))
            elif name == "set":
                key, equals, raw = value.partition("=")
                flag = PATH_SET_KEYS.get(key.strip())
                try:
                    path = json.loads(raw)
                except ValueError:
                    path = raw
                word = (shlex.quote(key + equals) + path_word(path, flag) if flag and isinstance(path, str)
                        else shlex.quote(value))
                words.append(f"{match.group(1)}set{separator}{word}")
            else:
                word = path_word(value, name) if (value or separator == " ") else ""
                words.append(f"{match.group(1)}{name}{separator}{word}")
        else:
            words.append(shlex.quote(args[i]))
        i += 1
    if os.path.normpath(cwd) != str(REPO_ROOT):
        for name, value in (implied or {}).items():
            if name not in given and value:
                words.append(f"--{name}={path_word(value, name)}")
    return {"command": " ".join(words), "command_portable": portable, "command_runs_from": "repository root"}


def command_line(argv) -> str:
    """The command as a user would type it from the repository root (see portable_command)."""
    return portable_command(argv)["command"]


def check_replaceable(path, config, model_dir=None, overwrite: bool = False) -> None:
    """Raises ConfigError if `path` holds the record of another run than `config`'s, unless
    `overwrite`. The same run is one with the same configuration up to where the data is
    (config.LOCATION_FIELDS), or, written from the same model_dir, one it continues with more
    epochs (a resumed run extended): its record is superseded, not lost."""
    from tfsp.config import ConfigError
    from tfsp.stored_config import LOCATION_FIELDS, config_differences, describe_differences

    if overwrite or not path or not os.path.exists(path):
        return
    try:
        stored = read_json(path)
    except (OSError, ValueError) as e:
        reason = f"cannot be read as a record ({e})"
    else:
        if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
            reason = "holds no run configuration to compare with"
        else:
            differences = config_differences(stored["config"], config, LOCATION_FIELDS)
            if not differences:
                return
            extended = (model_dir is not None and stored.get("model_dir") == portable_path(model_dir)[0]
                        and {p for p, _, _ in differences} <= {"epochs", "final_epochs_on_all_training_data"})
            if extended:
                return
            reason = "holds the record of another run (" + describe_differences(differences, "it") + ")"
    raise ConfigError(f"{path} {reason}; pass --overwrite_results to replace it, or write this "
                      "run's record beside it (--results_suffix or --results_dir)")
