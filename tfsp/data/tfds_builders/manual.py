"""What the three TFDS builders share: the manual folder, the checksums of the files read,
preparing, and opening a prepared dataset with errors that say what to do."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import tensorflow_datasets as tfds

from tfsp.data.errors import DataError

CHECKSUMS_KEY = "manual_files_sha256"
"""info.metadata key: {path relative to the manual folder: SHA-256 hex} of every file read."""


def manual_folder(dl_manager) -> Path:
    """``dl_manager.manual_dir``, a DataError (naming the folder and the instructions) if it is
    missing or empty rather than TFDS's AssertionError."""
    try:
        return Path(os.fspath(dl_manager.manual_dir))
    except AssertionError as e:
        raise DataError(str(e)) from None


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_manual_files(info, folder: Path, paths) -> None:
    """Adds the SHA-256 of each of ``paths`` to ``info.metadata`` (saved with the prepared
    dataset), keyed by its path relative to ``folder``, so a user can tell which copy was prepared."""
    info.metadata["manual_dir"] = str(Path(folder).absolute())
    digests = info.metadata.setdefault(CHECKSUMS_KEY, {})
    for path in paths:
        path = Path(path)
        try:
            key = path.relative_to(folder).as_posix()
        except ValueError:
            key = str(path)
        if key not in digests:  # a file several splits read (an archive) is hashed once
            digests[key] = sha256(path)


def prepare(name: str, *, data_dir=None, manual_dir=None):
    """Prepares the TFDS dataset ``name`` (``"weizmann_horses"``, ``"lfw_parts"``,
    ``"mulan/<name>"``) in ``data_dir`` from the downloaded files in ``manual_dir``; returns the builder.

    The same as ``tfds.builder(name, data_dir=data_dir).download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))``.
    """
    import tfsp.data.tfds_builders  # noqa: F401  (registers the builders)

    builder = tfds.builder(name, data_dir=os.path.expanduser(data_dir) if data_dir else None)
    config = tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir) if manual_dir else None)
    builder.download_and_prepare(download_config=config)
    return builder


def prepare_command(name: str, data_dir, manual_what: str) -> str:
    """The line that prepares ``name``, for error messages."""
    target = f"data_dir={str(data_dir)!r}, " if data_dir else ""
    return (f"python -c \"from tfsp.data.tfds_builders import prepare; prepare({name!r}, {target}"
            f"manual_dir='FOLDER')\" with FOLDER {manual_what}")


def open_prepared(builder_cls, data_dir, manual_what: str, config=None):
    """The builder of a dataset already prepared in ``data_dir`` (None: TFDS's default,
    $TFDS_DATA_DIR or ~/tensorflow_datasets); a DataError saying how to prepare it otherwise."""
    data_dir = os.path.expanduser(data_dir) if data_dir else None
    builder = builder_cls(data_dir=data_dir, config=config)
    if not builder.is_prepared():
        name = builder.name + (f"/{builder.builder_config.name}" if builder.builder_config else "")
        raise DataError(
            f"{builder.data_path}: no prepared TFDS dataset {name} (version {builder.version}) in the TFDS data "
            f"folder {builder.data_dir_root} (data.reader=tfds reads the folder given as --data_dir, else "
            f"$TFDS_DATA_DIR or ~/tensorflow_datasets). Prepare it once with\n  "
            f"{prepare_command(name, data_dir, manual_what)}\nor read the files themselves with "
            f"--set data.reader=files.")
    return builder


def describe(builder) -> str:
    """Where a prepared dataset is and what it was prepared from (the data's source in results)."""
    prepared_from = builder.info.metadata.get("manual_dir")
    return (f"{builder.data_path} (TFDS {builder.info.full_name}"
            + (f", prepared from {prepared_from})" if prepared_from else ")"))
