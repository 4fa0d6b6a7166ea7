"""Loader for MULAN multi-label datasets (Bibtex, Bookmarks, and any other).

A MULAN dataset is a pair of files:

* ``<name>.arff`` -- a Weka ARFF file holding features and labels as
  attributes. Rows may be dense (``v1,v2,...``) or sparse
  (``{index value, ...}``, omitted entries take the attribute's implicit
  value: 0 for numeric attributes, the first declared category for nominal
  ones); both are read with liac-arff (``import arff``), sparse files through
  its COO return type, and turned into a dense array with vectorized NumPy.
* ``<name>.xml`` -- the label file (namespace
  ``http://mulan.sourceforge.net/labels``) naming the label attributes,
  ``<label name="TAG_2005"></label>``; labels may be nested inside hierarchy
  elements or inside each other. Labels are taken in document order.

Label columns are found by the names in the XML wherever they sit in the
attribute list (first, last, interleaved); every other attribute is a
feature. Supported attribute types: NUMERIC / REAL / INTEGER, and nominal.
Nominal categories that read as numbers (the usual ``{0,1}``) take that
number; other nominal categories (features only) take their 0-based index in
the declaration. Missing values (``?``) become NaN in features and are an
error in labels. A label must be a nominal ``{0,1}`` attribute or a numeric
attribute whose values are all 0 or 1. STRING and DATE attributes are
rejected.

Either file may be gzip-compressed (``<name>.arff.gz``, ``<name>.xml.gz``); it
is decompressed in memory. An ARFF file with no data rows (empty, or a header
alone) is an error: there would be nothing to train or test on.

Every problem with the input raises :class:`tfsp.data.errors.DataError`
naming the file at fault (and, for a malformed ARFF, the physical line).

Shipped copy: Bibtex is distributed with this repository, gzip-compressed,
under ``third_party/bibtex/`` with its SHA-256 sums (``SHA256SUMS``);
:func:`find_shipped` locates it (source tree or editable install, else the
installed ``share/tfsp/third_party``) and :func:`load_shipped_mulan` reads it
after checking the sums.

Splits: :func:`seeded_split` is the seeded permutation used for Bibtex here
(the original MULAN train/test files were not available), and
:func:`carve_validation` takes a deterministic validation part out of a
train split.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import sys
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from pathlib import Path
from typing import Sequence

import arff
import numpy as np

from tfsp.data.errors import DataError

__all__ = [
    "DataError",
    "MULAN_URL",
    "MulanData",
    "carve_validation",
    "find_mulan_files",
    "find_shipped",
    "load_mulan",
    "load_shipped_mulan",
    "shipped_display_path",
    "shipped_dirs",
    "shipped_files",
    "seeded_split",
]

MULAN_URL = "http://mulan.sourceforge.net/datasets-mlc.html"

SHIPPED_DATASETS = ("bibtex",)
"""MULAN datasets whose data ship with tfsp, under third_party/<name>/."""
CHECKSUMS_FILE = "SHA256SUMS"
"""`sha256sum` output for the shipped .gz files, beside them."""

PathLike = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True, eq=False)
class MulanData:
    """A loaded MULAN dataset, rows in file order.

    Attributes:
      features: float32 [N, F]; missing feature values are NaN.
      labels: float32 [N, L] of 0/1, columns in XML order.
      feature_names: the F feature attribute names, in ARFF order.
      label_names: the L label names, in XML order.
      source: the ARFF path the data were read from.
    """

    features: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...]
    label_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        n, f = self.features.shape
        if self.labels.shape != (n, len(self.label_names)) or f != len(self.feature_names):
            raise ValueError(
                f"inconsistent MulanData: features {self.features.shape}, labels "
                f"{self.labels.shape}, {len(self.feature_names)} feature names, "
                f"{len(self.label_names)} label names"
            )

    @property
    def num_examples(self) -> int:
        return int(self.features.shape[0])


def _obtain_hint(stem: str) -> str:
    hint = (
        f"The MULAN datasets come as <name>.arff plus <name>.xml (here {stem}.arff "
        f"and {stem}.xml); download them from the MULAN datasets page {MULAN_URL}"
    )
    if stem.lower() != "bibtex":
        hint += " (for Bibtex the expected files are bibtex.arff and bibtex.xml)"
    return hint + "."


def _require_file(path: Path, stem: str) -> None:
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise DataError(f"MULAN file {path} {what}. {_obtain_hint(stem)}")


# --------------------------------------------------------------------------- XML


def _read_label_names(xml_bytes: bytes, xml_path: Path) -> tuple[str, ...]:
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as e:
        line, col = e.position
        raise DataError(
            f"malformed MULAN label XML {xml_path}, line {line} column {col + 1}: {e}"
        ) from None
    names: list[str] = []
    for el in root.iter():  # document order, nested labels included
        if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == "label":
            name = el.get("name")
            if not name:
                raise DataError(f"MULAN label XML {xml_path}: a <label> element has no name")
            names.append(name)
    if not names:
        raise DataError(f"MULAN label XML {xml_path} names no <label> elements")
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise DataError(f"MULAN label XML {xml_path} names labels more than once: {dup}")
    return tuple(names)


# -------------------------------------------------------------------------- ARFF


def _count_data_rows(text: str) -> tuple[int, bool]:
    """Data rows after ``@data`` as liac-arff counts them, and whether all are sparse.

    COO output drops empty sparse rows, so trailing ``{}`` rows would be lost
    without this count. Returns (0, True) when no ``@data`` line is found
    (liac-arff then reports the error with its line).
    """
    lines = text.split("\n")
    start = None
    for i, line in enumerate(lines):
        s = line.strip()
        if s.upper().startswith("@DATA"):
            start = i + 1
            break
    if start is None:
        return 0, True
    rows = [s for s in (line.strip() for line in lines[start:]) if s and not s.startswith("%")]
    return len(rows), all(r.startswith("{") for r in rows)


def _category_value(categories: Sequence[str]) -> np.ndarray:
    """Numeric value of each nominal category: the number itself, else its index."""
    try:
        return np.array([float(c) for c in categories], dtype=np.float64)
    except ValueError:
        return np.arange(len(categories), dtype=np.float64)


def _decode(text: str, arff_path: Path) -> tuple[dict, int, bool]:
    """liac-arff parse (COO for all-sparse data, else DENSE): (object, data rows, sparse)."""
    n_rows, sparse = _count_data_rows(text)
    kind = arff.COO if sparse else arff.DENSE
    try:
        # A StringIO of the universal-newline text iterates exactly the
        # physical lines of the file, so liac-arff's .line is the file line.
        obj = arff.load(io.StringIO(text), encode_nominal=True, return_type=kind)
    except arff.ArffException as e:
        line = getattr(e, "line", None)
        where = f", line {line}" if line is not None else ""
        raise DataError(f"malformed ARFF file {arff_path}{where}: {e}") from None
    except ValueError as e:  # conversion errors liac-arff does not wrap
        raise DataError(f"malformed ARFF file {arff_path}: {e}") from None
    return obj, n_rows, sparse


def _to_arrays(
    obj: dict, n_rows: int, sparse: bool, arff_path: Path, label_cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Features [N, F] float32 and raw label values [N, L] float64.

    Nominal codes are mapped to their category values; sparse entries are
    scattered straight into the two outputs (no [N, A] intermediate).
    """
    attributes = obj["attributes"]
    n_attr = len(attributes)
    for name, kind in attributes:
        if isinstance(kind, str) and kind.upper() not in ("NUMERIC", "REAL", "INTEGER"):
            raise DataError(
                f"ARFF file {arff_path}: attribute {name!r} has unsupported type {kind}"
                " (supported: NUMERIC, REAL, INTEGER, nominal)"
            )
    # Flat lookup table: code k of nominal attribute a -> table[offset[a] + k].
    tables = [_category_value(kind) if isinstance(kind, list) else np.zeros(1) for _, kind in attributes]
    offset = np.cumsum([0] + [len(t) for t in tables[:-1]]).astype(np.int64)
    table = np.concatenate(tables)
    nominal = np.array([isinstance(kind, list) for _, kind in attributes], dtype=bool)
    # Implicit value of an omitted sparse entry: 0, or the first nominal category.
    implicit = np.where(nominal, table[offset], 0.0)

    is_label = np.zeros(n_attr, dtype=bool)
    is_label[label_cols] = True
    feature_cols = np.flatnonzero(~is_label)
    position = np.empty(n_attr, dtype=np.int64)  # attribute -> column in its output
    position[label_cols] = np.arange(len(label_cols))
    position[feature_cols] = np.arange(len(feature_cols))

    def map_codes(codes: np.ndarray, cols: np.ndarray) -> np.ndarray:
        sel = nominal[cols] & ~np.isnan(codes)
        codes[sel] = table[offset[cols[sel]] + codes[sel].astype(np.int64)]
        return codes

    if not sparse:
        full = np.asarray(obj["data"], dtype=np.float64).reshape(-1, n_attr)
        cols = np.broadcast_to(np.arange(n_attr), full.shape).ravel()
        full = map_codes(full.ravel(), cols).reshape(full.shape)
        return full[:, feature_cols].astype(np.float32), full[:, label_cols]

    values, rows, cols = obj["data"]
    vals = np.asarray(values, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    n = max(n_rows, int(rows.max()) + 1 if rows.size else 0)
    vals = map_codes(vals, cols)

    def scatter(out_cols: np.ndarray, dtype: type, mask: np.ndarray) -> np.ndarray:
        fill = implicit[out_cols]
        out = np.zeros((n, len(out_cols)), dtype) if not fill.any() else np.tile(fill.astype(dtype), (n, 1))
        out[rows[mask], position[cols[mask]]] = vals[mask]
        return out

    in_label = is_label[cols]
    return (scatter(feature_cols, np.float32, ~in_label),
            scatter(label_cols, np.float64, in_label))


def load_mulan(arff_path: PathLike, xml_path: PathLike) -> MulanData:
    """Load a MULAN dataset from its ARFF file and label XML file.

    Args:
      arff_path: the ``<name>.arff`` file (dense or sparse rows).
      xml_path: the ``<name>.xml`` label file.

    Returns:
      MulanData with float32 features [N, F] and 0/1 float32 labels [N, L],
      rows in file order, label columns in XML order.

    Raises:
      DataError: a file is missing or malformed, a label named in the XML is
        not an ARFF attribute, or a label column is not 0/1.
    """
    arff_path, xml_path = Path(arff_path), Path(xml_path)
    arff_name = _without_gz(arff_path.name)
    stem = Path(arff_name if arff_name.lower().endswith(".arff") else _without_gz(xml_path.name)).stem
    _require_file(arff_path, stem)
    _require_file(xml_path, stem)
    return _parse_mulan(_read_bytes(arff_path), _read_bytes(xml_path), arff_path, xml_path)


def _without_gz(name: str) -> str:
    """``bibtex.arff.gz`` -> ``bibtex.arff``."""
    return name[:-3] if name.lower().endswith(".gz") else name


def _read_bytes(path: Path, raw: bytes | None = None) -> bytes:
    """The file's content, gunzipped in memory when its name ends in .gz."""
    if raw is None:
        raw = path.read_bytes()
    if not path.name.lower().endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"{path}: not a readable gzip file ({e})") from None


def _parse_mulan(arff_bytes: bytes, xml_bytes: bytes, arff_path: Path, xml_path: Path) -> MulanData:
    """load_mulan on the files' (uncompressed) bytes; the paths name them in errors."""
    label_names = _read_label_names(xml_bytes, xml_path)
    try:
        text = arff_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:  # some older ARFF files are Latin-1
        text = arff_bytes.decode("latin-1")
    # Universal newlines, as open() in text mode reads a file: one line per physical line.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not any(s and not s.startswith("%") for s in (line.strip() for line in text.split("\n"))):
        raise DataError(f"ARFF file {arff_path} is empty: no header and no examples (data rows)")
    obj, n_rows, sparse = _decode(text, arff_path)
    if n_rows == 0:
        raise DataError(f"ARFF file {arff_path} has no examples: no data rows after its @data line")

    attributes = obj["attributes"]
    names = [name for name, _ in attributes]
    index = {name: i for i, name in enumerate(names)}
    missing = [name for name in label_names if name not in index]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(
            f"{len(missing)} label(s) named in {xml_path} are not attributes of "
            f"{arff_path}: {shown}"
        )
    label_cols = np.array([index[name] for name in label_names], dtype=np.int64)
    for name, col in zip(label_names, label_cols):
        kind = attributes[col][1]
        if isinstance(kind, list) and not set(kind) <= {"0", "1"}:
            raise DataError(
                f"label {name!r} in {arff_path} is a nominal attribute with values "
                f"{{{','.join(kind)}}}; MULAN labels must be {{0,1}}"
            )

    features, labels = _to_arrays(obj, n_rows, sparse, arff_path, label_cols)
    bad = ~((labels == 0) | (labels == 1))
    if bad.any():
        row, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"label {label_names[j]!r} in {arff_path} is not 0/1: data row {row} "
            f"(0-based) has value {labels[row, j]} ({int(bad.sum())} bad entries in all)"
        )
    label_set = set(label_names)
    return MulanData(
        features=features,
        labels=labels.astype(np.float32),
        feature_names=tuple(n for n in names if n not in label_set),
        label_names=label_names,
        source=str(arff_path),
    )


# ------------------------------------------------------------------ file finding


def find_mulan_files(
    data_dir: PathLike | None,
    name: str,
    *,
    arff_path: PathLike | None = None,
    xml_path: PathLike | None = None,
) -> tuple[Path, Path]:
    """Locate ``<name>.arff`` and ``<name>.xml``.

    Explicit ``arff_path`` / ``xml_path`` are used as given (they must exist).
    Otherwise the files are looked for, as a pair, in ``data_dir``,
    ``data_dir/mulan/<name>`` and ``data_dir/<name>`` (so both a dataset
    folder and the root of a data folder work); when only one path is
    explicit, the other is looked for next to it first. A file missing
    uncompressed may be there gzip-compressed (``<name>.arff.gz``).

    Raises:
      DataError: listing every path tried, the files needed and where to
        obtain them.
    """
    files = (f"{name}.arff", f"{name}.xml")
    explicit = (Path(arff_path) if arff_path is not None else None,
                Path(xml_path) if xml_path is not None else None)
    for p in explicit:
        if p is not None:
            _require_file(p, name)
    if explicit[0] is not None and explicit[1] is not None:
        return explicit[0], explicit[1]

    dirs: list[Path] = [p.parent for p in explicit if p is not None]
    if data_dir is not None:
        root = Path(data_dir)
        dirs += [root, root / "mulan" / name, root / name]
    tried: list[Path] = []
    for d in dirs:
        found = []
        for given, fname in zip(explicit, files):
            path = given if given is not None else d / fname
            if given is None:
                tried.append(path)
                if not path.is_file():
                    path = d / f"{fname}.gz"
            found.append(path if path.is_file() else None)
        if all(found):
            return found[0], found[1]
    needed = " and ".join(f for f, g in zip(files, explicit) if g is None)
    lines = "\n".join(f"  {p} (or {p.name}.gz)" for p in tried) or "  (no data directory given)"
    raise DataError(
        f"MULAN dataset {name!r} not found: need {needed} in one folder; tried\n{lines}\n"
        f"{_obtain_hint(name)}"
    )


# ------------------------------------------------------------------ shipped copy


def shipped_dirs(name: str) -> list[Path]:
    """Where the shipped copy of ``name`` is looked for, in order.

    ``third_party/<name>`` beside the ``tfsp`` package (the source tree, which
    is also what ``pip install -e .`` imports), then the copy a regular install
    puts under ``<prefix>/share/tfsp/third_party/<name>`` (setup.cfg data_files).
    """
    return [Path(__file__).resolve().parents[2] / "third_party" / name,
            Path(sys.prefix) / "share" / "tfsp" / "third_party" / name]


def shipped_files(folder: PathLike, name: str) -> tuple[Path, Path]:
    """The shipped ARFF and label XML of ``name`` in ``folder`` (both gzip files)."""
    folder = Path(folder)
    return folder / f"{name}.arff.gz", folder / f"{name}.xml.gz"


def find_shipped(name: str) -> Path | None:
    """The folder holding the shipped ``<name>.arff.gz`` and ``<name>.xml.gz``, or None."""
    if name.lower() not in SHIPPED_DATASETS:
        return None
    for folder in shipped_dirs(name.lower()):
        if all(p.is_file() for p in shipped_files(folder, name.lower())):
            return folder
    return None


def shipped_display_path(path: PathLike) -> str:
    """A shipped file's path relative to the tree it was found in (``third_party/bibtex/...``)."""
    path = Path(path).resolve()
    for folder in shipped_dirs(path.parent.name):
        if path.parent == folder.resolve():
            return str(path.relative_to(folder.parent.parent))
    return str(path)


def _read_checksums(path: Path) -> dict[str, str]:
    """file name -> SHA-256 hex digest from a `sha256sum` output file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path} not found: the shipped copy beside it cannot be checked") from None
    sums = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, fname = line.partition(" ")
        fname = fname.strip().lstrip("*")  # "*name" marks binary mode in sha256sum output
        if len(digest) != 64 or not fname:
            raise DataError(f"{path}:{lineno}: expected '<sha256 hex>  <file name>', got {line!r}")
        sums[fname] = digest.lower()
    return sums


def load_shipped_mulan(name: str = "bibtex", folder: PathLike | None = None) -> MulanData:
    """Load the copy of ``name`` shipped with tfsp (gzip files read in memory).

    Each ``.gz`` file's SHA-256 is checked against ``SHA256SUMS`` in the same
    folder before it is decompressed. ``folder`` defaults to :func:`find_shipped`.

    Raises:
      DataError: the shipped copy is not found, a checksum is missing or does
        not match, or the data are malformed.
    """
    name = name.lower()
    if folder is None:
        folder = find_shipped(name)
        if folder is None:
            tried = "\n".join(f"  {d}" for d in shipped_dirs(name))
            raise DataError(f"no shipped copy of {name!r} ({name}.arff.gz and {name}.xml.gz); looked in\n"
                            f"{tried}\n{_obtain_hint(name)}")
    folder = Path(folder)
    sums_path = folder / CHECKSUMS_FILE
    sums = _read_checksums(sums_path)
    contents = []
    for path in shipped_files(folder, name):
        _require_file(path, name)
        raw = path.read_bytes()
        expected = sums.get(path.name)
        if expected is None:
            raise DataError(f"{sums_path} records no SHA-256 for {path.name}: the shipped copy cannot be checked")
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected:
            raise DataError(
                f"{path}: SHA-256 checksum mismatch: the file's is {digest}, {sums_path} records {expected}. "
                "The shipped copy is damaged or was changed; restore it from the repository "
                f"(git restore third_party/{name}) or give the data with --data_dir")
        contents.append(_read_bytes(path, raw))
    arff_path, xml_path = shipped_files(folder, name)
    return _parse_mulan(contents[0], contents[1], arff_path, xml_path)


# ------------------------------------------------------------------------ splits


def seeded_split(n: int, n_train: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test split of ``n`` rows.

    Exactly ``perm = numpy.random.RandomState(seed).permutation(n)``,
    train = ``perm[:n_train]``, test = ``perm[n_train:]`` (for Bibtex here:
    n=7395, n_train=4880, seed=0).
    """
    if not 0 <= n_train <= n:
        raise ValueError(f"need 0 <= n_train <= n, got n_train={n_train}, n={n}")
    perm = np.random.RandomState(seed).permutation(n)
    return perm[:n_train], perm[n_train:]


def carve_validation(
    train_idx: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split a validation part off ``train_idx``, deterministically.

    With ``perm = numpy.random.RandomState(seed).permutation(len(train_idx))``
    and ``k = round(fraction * len(train_idx))``, the positions ``perm[-k:]``
    form the validation part. Both parts keep the order they had in
    ``train_idx``; ``fraction == 0`` returns ``train_idx`` unchanged and an
    empty validation part.
    """
    train_idx = np.asarray(train_idx)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    m = len(train_idx)
    k = int(round(fraction * m))
    is_val = np.zeros(m, dtype=bool)
    if k:
        is_val[np.random.RandomState(seed).permutation(m)[m - k:]] = True
    return train_idx[~is_val], train_idx[is_val]
