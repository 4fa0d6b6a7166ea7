"""LFW Part Labels (Kae et al. 2013): 3-class face segmentation (hair / face / background).

Layout (as distributed at http://vis-www.cs.umass.edu/lfw/part_labels/ and
http://vis-www.cs.umass.edu/lfw/)::

    lfw_parts/
      lfw_funneled/<Person>/<Person>_NNNN.jpg          250x250 funneled images
      parts_lfw_funneled_gt_images.tgz                  pixel labels: a gzipped tar of
          parts_lfw_funneled_gt_images/<Person>_NNNN.ppm   (or that folder, extracted)
      parts_train.txt, parts_validation.txt, parts_test.txt   lines "Person_Name N"
      parts_lfw_funneled_superpixels_mat/<Person>/<Person>_NNNN.dat   optional
      parts_lfw_funneled_gt/<Person>/<Person>_NNNN.dat                optional

``data_dir`` may be the ``lfw_parts`` folder or a parent holding ``lfw_parts/``.
The two superpixel folders may also be given as ``.tgz`` archives of the same
name. A list line ``Person_Name N`` names ``Person_Name_000N`` (N zero-padded
to 4 digits).

Classes (channel order of the one-hot labels, and the class ids):
0 = hair (red in the PPM), 1 = face / skin (green), 2 = background (blue).
A PPM pixel's class is the arg-max of its (R, G, B) values, which tolerates
anti-aliased or slightly-off colours; a pixel whose channels are all < 128
(black / unlabelled) is an error. Ties go to the lower class id.

Superpixel files, as found in ``superpixel_format_example/`` (IngaHall_SP.dat,
IngaHall_GT.dat; ASCII, CRLF line ends, both accepted with LF too):

* ``*_SP.dat`` (the superpixel map): 250 lines, each 250 space-separated
  integers (a trailing space before the line end), one image row per line.
  Ids are 0-based and contiguous: the example uses 0..236 (237 superpixels),
  numbered roughly in raster order of the superpixels' first pixel.
* ``*_GT.dat`` (superpixel labels): first line the number of superpixels K
  (237 in the example, = max id + 1 of the map), then K lines with one class
  id in {0, 1, 2} each, the label of superpixel 0, 1, ..., K-1.
* Class id order: the public feature code of the original authors (as
  reproduced in e.g. github.com/hushell/drnn, features/generate_features.cpp,
  ``computeGTppm``) writes 0 for red, 1 for green and 2 for blue pixels, i.e.
  the same order as above. On the example, the map matches
  ``Inga_Hall_0001`` (97% of pixels fall in superpixels whose PPM-majority
  class they share) and label 1 is unambiguously the face (54 of its 57
  superpixels are face by PPM majority); label 2 superpixels are background
  (37 of 39), but label 0 superpixels are hair (57) *or* background (83):
  that example's GT file does not agree with this copy of the pixel labels
  away from the face. :func:`superpixel_labels_from_pixels` derives
  per-superpixel labels from the pixel labels by majority vote if you prefer
  those.

Superpixel accuracy (:func:`superpixel_accuracy`): each superpixel gets the
majority predicted class of its pixels (ties -> lower class id); the score is
the fraction of superpixels, pooled over all images, whose majority matches
their label. :func:`pixel_accuracy` is the fraction of pixels correct.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfsp.data.errors import DataError
from tfsp.data.images import decode_image, progress_bar, read_ppm, resize_bilinear, resize_one_hot

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "SPLITS",
    "LfwExample",
    "LfwPartsData",
    "LfwPartsFiles",
    "find_lfw_split",
    "lfw_parts_at_size",
    "load_lfw_parts",
    "read_split_list",
    "ppm_to_class_ids",
    "read_superpixel_map",
    "read_superpixel_labels",
    "superpixel_labels_from_pixels",
    "superpixel_accuracy",
    "pixel_accuracy",
    "class_maps_from_scores",
]

CLASS_NAMES = ("hair", "face", "background")
NUM_CLASSES = 3
SPLITS = ("train", "validation", "test")

_LIST_FILES = {s: f"parts_{s}.txt" for s in SPLITS}
_GT_IMAGES = "parts_lfw_funneled_gt_images"
_SP_MAPS = "parts_lfw_funneled_superpixels_mat"
_SP_LABELS = "parts_lfw_funneled_gt"

_WHERE = (
    "Get the part labels, superpixels and split lists (parts_lfw_funneled_gt_images.tgz, "
    "parts_lfw_funneled_superpixels_mat.tgz, parts_lfw_funneled_gt.tgz, parts_train.txt, "
    "parts_validation.txt, parts_test.txt) from http://vis-www.cs.umass.edu/lfw/part_labels/ "
    "and the funneled images (lfw-funneled.tgz, extracted as lfw_funneled/) from "
    "http://vis-www.cs.umass.edu/lfw/."
)
_LAYOUT = (
    "expected files: <data_dir>/lfw_funneled/<Person>/<Person>_NNNN.jpg, "
    "<data_dir>/parts_lfw_funneled_gt_images.tgz (or the extracted folder parts_lfw_funneled_gt_images/"
    "<Person>_NNNN.ppm), <data_dir>/parts_{train,validation,test}.txt; optionally "
    "<data_dir>/parts_lfw_funneled_superpixels_mat/<Person>/<Person>_NNNN.dat and "
    "<data_dir>/parts_lfw_funneled_gt/<Person>/<Person>_NNNN.dat (superpixel maps and labels). "
    "data_dir may also be a parent folder holding lfw_parts/. " + _WHERE
)


@dataclasses.dataclass(frozen=True, eq=False)
class LfwPartsData:
    """One split of LFW Part Labels.

    Attributes:
      images: float32 ``[N, size, size, 3]`` in [0, 1] (250x250 images resized).
      labels: float32 ``[N, size, size, 3]`` one-hot, channels (hair, face, background).
      labels_full: uint8 ``[N, 250, 250]`` class ids at full resolution.
      names: ``"Person_Name_NNNN"`` in list-file order.
      split: "train", "validation", "test" or "all".
      source: the folder the data was read from.
      superpixels: int32 ``[N, 250, 250]`` superpixel ids, or None if absent.
      superpixel_labels: tuple of N int32 arrays (one class id per superpixel),
        or None if the superpixel label files are absent.
    """

    images: np.ndarray
    labels: np.ndarray
    labels_full: np.ndarray
    names: tuple
    split: str
    source: str
    superpixels: Optional[np.ndarray] = None
    superpixel_labels: Optional[tuple] = None

    def __len__(self) -> int:
        return len(self.names)


# ----------------------------------------------------------------------------
# Reading members from a folder or from a .tgz archive.


class _Members:
    """Files keyed by base name, from a folder tree or a tar archive."""

    def __init__(self, path: Path):
        self.path = path
        self.is_tar = path.is_file()
        self.read_from = {}  # base name -> the file it was read from (folder members)

    def read(self, wanted: Sequence[str]) -> dict:
        """Returns {base name: bytes} for the base names in ``wanted`` that exist."""
        wanted = set(wanted)
        found = {}
        if self.is_tar:
            try:
                with tarfile.open(self.path, "r|*") as tar:
                    for m in tar:  # one sequential pass through the (gzipped) stream
                        base = m.name.replace("\\", "/").rsplit("/", 1)[-1]
                        if m.isfile() and base in wanted and base not in found:
                            found[base] = tar.extractfile(m).read()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise DataError(f"{self.path}: unreadable or corrupt archive ({e})") from e
        else:
            for base in wanted:
                # Person sub-folders (superpixel layout) or flat (gt images).
                stem = base.rsplit(".", 1)[0]
                person = stem.rsplit("_", 1)[0]
                for cand in (self.path / person / base, self.path / base):
                    if cand.is_file():
                        found[base] = cand.read_bytes()
                        self.read_from[base] = cand
                        break
        return found

    def files(self) -> list:
        """The files read so far: the archive, or each member file of the folder."""
        return [self.path] if self.is_tar else list(self.read_from.values())

    def where(self, base: str) -> str:
        return f"{self.path}:{base}" if self.is_tar else str(self.read_from.get(base, self.path / base))


def _find_members(root: Path, name: str) -> Optional[_Members]:
    """The folder ``name`` or an archive ``name.tgz`` / ``.tar.gz`` / ``.tar`` in root."""
    if (root / name).is_dir():
        return _Members(root / name)
    for ext in (".tgz", ".tar.gz", ".tar"):
        if (root / (name + ext)).is_file():
            return _Members(root / (name + ext))
    return None


def _find_root(data_dir) -> Path:
    base = Path(os.fspath(data_dir)).expanduser()
    for cand in (base, base / "lfw_parts"):
        if (cand / "lfw_funneled").is_dir() or any((cand / f).is_file() for f in _LIST_FILES.values()):
            return cand
    if not base.exists():
        raise DataError(f"{base}: folder not found; {_LAYOUT}")
    raise DataError(f"{base}: no LFW part-label data here (no lfw_funneled/ or parts_*.txt); {_LAYOUT}")


# ----------------------------------------------------------------------------
# Parsers.


def read_split_list(path) -> list:
    """Parses a ``parts_*.txt`` file: lines ``Person_Name N`` -> ``Person_Name_000N``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: split list not found; {_LAYOUT}") from None
    names = []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise DataError(f"{path}:{lineno}: expected 'Person_Name N', got {line.strip()!r}")
        names.append(f"{parts[0]}_{int(parts[1]):04d}")
    if not names:
        raise DataError(f"{path}: empty split list")
    return names


def ppm_to_class_ids(rgb: np.ndarray, *, name: str = "<array>") -> np.ndarray:
    """(R, G, B) label image -> uint8 class ids (0 hair, 1 face, 2 background).

    Arg-max over channels; raises DataError naming ``name`` if any pixel has
    all channels < 128 (black or unlabelled).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DataError(f"{name}: expected an RGB label image, got shape {rgb.shape}")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    bad = np.maximum(np.maximum(r, g), b) < 128
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{name}: {int(bad.sum())} pixel(s) are black/ambiguous (all channels < 128), first at "
            f"row {row}, column {col} with colour {tuple(int(v) for v in rgb[row, col])}; expected red (hair), "
            "green (face) or blue (background)"
        )
    # arg-max over (R, G, B) with ties to the lower index, on channel planes (fast).
    ids = np.full(rgb.shape[:2], 2, np.uint8)
    ids[g >= b] = 1
    ids[(r >= g) & (r >= b)] = 0
    return ids


def _text(source, name):
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise DataError(f"{name}: file not found") from None
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise DataError(f"{name}: not an ASCII text file") from None


def read_superpixel_map(path, *, name: str | None = None) -> np.ndarray:
    """Reads a ``*_SP.dat`` / ``<Person>_NNNN.dat`` superpixel map -> int32 ``[H, W]``.

    One image row per line, space-separated non-negative integer ids (0-based).
    ``path`` may also be the file's bytes (then ``name`` names it in errors).
    """
    name = name or (str(path) if not isinstance(path, (bytes, bytearray)) else "<bytes>")
    rows = [line.split() for line in _text(path, name).splitlines()]
    rows = [r for r in rows if r]
    if not rows:
        raise DataError(f"{name}: empty superpixel map")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise DataError(f"{name}: ragged superpixel map (row lengths {sorted(widths)[:5]})")
    try:
        sp = np.array(rows, dtype=np.int64)
    except ValueError:
        raise DataError(f"{name}: non-integer superpixel id") from None
    if sp.min() < 0:
        raise DataError(f"{name}: negative superpixel id {int(sp.min())}")
    return sp.astype(np.int32)


def read_superpixel_labels(path, *, name: str | None = None, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Reads a ``*_GT.dat`` superpixel label file -> int32 ``[K]`` class ids.

    First line K, then K class ids in [0, num_classes), one per line.
    """
    name = name or (str(path) if not isinstance(path, (bytes, bytearray)) else "<bytes>")
    tokens = _text(path, name).split()
    if not tokens:
        raise DataError(f"{name}: empty superpixel label file")
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError:
        raise DataError(f"{name}: non-integer entry in superpixel label file") from None
    k = int(values[0])
    if k < 0 or values.size - 1 != k:
        raise DataError(f"{name}: header says {k} superpixels but {values.size - 1} labels follow")
    labels = values[1:]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{name}: class id out of range 0..{num_classes - 1}")
    return labels.astype(np.int32)


# ----------------------------------------------------------------------------
# Metrics.


def _as_label_list(superpixel_labels, n):
    labels = [np.asarray(x, dtype=np.int64).ravel() for x in superpixel_labels]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} superpixel label arrays for {n} images")
    return labels


def _majority_per_superpixel(class_maps, superpixel_maps, num_classes):
    """Vote counts [total superpixels, C], with per-image offsets into the first axis."""
    cls = np.asarray(class_maps).astype(np.int64)
    sp = np.asarray(superpixel_maps).astype(np.int64)
    if cls.shape != sp.shape or cls.ndim != 3:
        raise ValueError(f"class maps {cls.shape} and superpixel maps {sp.shape} must both be [N, H, W]")
    if cls.size and (cls.min() < 0 or cls.max() >= num_classes):
        raise ValueError(f"class ids must lie in [0, {num_classes})")
    k = sp.reshape(sp.shape[0], -1).max(axis=1) + 1  # superpixels per image
    offsets = np.concatenate([[0], np.cumsum(k)[:-1]])
    flat = (offsets[:, None, None] + sp) * num_classes + cls
    votes = np.bincount(flat.ravel(), minlength=int(k.sum()) * num_classes)
    return votes.reshape(-1, num_classes), k, offsets


def superpixel_labels_from_pixels(superpixel_maps, labels_full, num_classes: int = NUM_CLASSES) -> tuple:
    """Per-superpixel labels by majority vote of pixel labels (ties -> lower id)."""
    votes, k, offsets = _majority_per_superpixel(labels_full, superpixel_maps, num_classes)
    maj = votes.argmax(axis=1).astype(np.int32)
    return tuple(maj[o : o + n] for o, n in zip(offsets, k))


def superpixel_accuracy(pred_class_maps, superpixel_maps, superpixel_labels, num_classes: int = NUM_CLASSES) -> float:
    """Fraction of superpixels whose majority predicted class equals their label.

    Args:
      pred_class_maps: int ``[N, H, W]`` predicted class ids (at the
        superpixel maps' resolution, 250x250 for LFW).
      superpixel_maps: int ``[N, H, W]`` 0-based superpixel ids.
      superpixel_labels: N sequences of class ids, entry s = label of
        superpixel s of that image (at least max id + 1 entries).
    Superpixel ids that never occur in a map are ignored; all superpixels of
    all images count equally. Vectorised with one ``np.bincount``.
    """
    votes, k, offsets = _majority_per_superpixel(pred_class_maps, superpixel_maps, num_classes)
    labels = _as_label_list(superpixel_labels, len(k))
    for i, (lab, ki) in enumerate(zip(labels, k)):
        if lab.size < ki:
            raise ValueError(f"image {i}: {lab.size} superpixel labels but superpixel ids go up to {ki - 1}")
    truth = np.concatenate([lab[:ki] for lab, ki in zip(labels, k)])
    present = votes.sum(axis=1) > 0
    if not present.any():
        raise ValueError("no superpixels")
    correct = votes.argmax(axis=1) == truth
    return float(correct[present].mean())


def pixel_accuracy(pred_class_maps, labels_full) -> float:
    """Fraction of pixels whose predicted class id equals the label (e.g. at 250x250)."""
    pred = np.asarray(pred_class_maps)
    true = np.asarray(labels_full)
    if pred.shape != true.shape:
        raise ValueError(f"predictions {pred.shape} and labels {true.shape} differ in shape")
    return float(np.mean(pred.astype(np.int64) == true.astype(np.int64)))


def class_maps_from_scores(scores, size=(250, 250), *, batch: int = 128) -> np.ndarray:
    """Class scores / probabilities ``[N, h, w, C]`` -> uint8 class ids ``[N, *size]``.

    Bilinear upsampling of the scores (no antialiasing), then arg-max: the
    way to score 32x32 predictions against ``labels_full`` at 250x250.
    """
    s = np.asarray(scores, dtype=np.float32)
    hw = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    out = np.empty((s.shape[0],) + hw, np.uint8)
    for start in range(0, s.shape[0], batch):
        up = tf.image.resize(s[start : start + batch], hw, method="bilinear")
        out[start : start + batch] = tf.argmax(up, axis=-1, output_type=tf.int32).numpy()
    return out


# ----------------------------------------------------------------------------
# Loader.


def _missing_error(what: str, missing: list, where_fn) -> DataError:
    shown = ", ".join(where_fn(m) for m in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return DataError(f"{len(missing)} {what} missing: {shown}{more}. {_WHERE}")


@dataclasses.dataclass(frozen=True, eq=False)
class LfwExample:
    """One image of a split as decoded from its files, before any resizing.

    Attributes:
      name: ``"Person_Name_NNNN"``.
      image: uint8 ``[H, W, 3]`` funneled image.
      class_ids: uint8 ``[H, W]`` class ids from the PPM label image.
      superpixels: int32 ``[H, W]`` superpixel map, or None.
      superpixel_labels: int32 ``[K]`` class id per superpixel, or None.
      where: names the example's image in errors (its file, or the TFDS dataset's example).
    """

    name: str
    image: np.ndarray
    class_ids: np.ndarray
    superpixels: Optional[np.ndarray] = None
    superpixel_labels: Optional[np.ndarray] = None
    where: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class LfwPartsFiles:
    """One split's files, checked to exist and read (superpixel files parsed); pixels decoded lazily.

    :func:`load_lfw_parts` reads them through :meth:`examples`; so does the TFDS
    builder ``lfw_parts`` (tfsp.data.tfds_builders), which stores the decoded pixels.
    """

    root: Path
    split: str
    names: tuple
    image_paths: tuple
    label_source: _Members
    label_bytes: dict
    superpixel_source: Optional[_Members] = None
    superpixels: Optional[list] = None
    superpixel_label_source: Optional[_Members] = None
    superpixel_labels: Optional[tuple] = None

    def files(self) -> list:
        """Every file read: the split lists, the images, the label archive or images, superpixel files."""
        lists = [self.root / _LIST_FILES[s] for s in (SPLITS if self.split == "all" else (self.split,))]
        sources = [m for m in (self.label_source, self.superpixel_source, self.superpixel_label_source) if m]
        return lists + list(self.image_paths) + [f for m in sources for f in m.files()]

    def examples(self):
        """Yields an :class:`LfwExample` per name, in list order, checking each label image
        (and superpixel map) against its image."""
        for i, (name, image_path) in enumerate(zip(self.names, self.image_paths)):
            image = decode_image(image_path)
            ppm = f"{name}.ppm"
            rgb = read_ppm(self.label_bytes[ppm], name=self.label_source.where(ppm))
            if rgb.shape[:2] != image.shape[:2]:
                raise DataError(
                    f"{self.label_source.where(ppm)}: label image is {rgb.shape[1]}x{rgb.shape[0]} but "
                    f"{image_path} is {image.shape[1]}x{image.shape[0]}"
                )
            sp = labels = None
            if self.superpixels is not None:
                sp, dat = self.superpixels[i], f"{name}.dat"
                if sp.shape != image.shape[:2]:
                    raise DataError(f"{self.superpixel_source.where(dat)}: superpixel map is {sp.shape}, "
                                    f"images are {image.shape[:2]}")
                if self.superpixel_labels is not None:
                    labels = self.superpixel_labels[i]
                    if labels.size < int(sp.max()) + 1:
                        raise DataError(
                            f"{self.superpixel_label_source.where(dat)}: {labels.size} superpixel labels, "
                            f"but the map has ids up to {int(sp.max())}"
                        )
            yield LfwExample(name=name, image=image, class_ids=ppm_to_class_ids(rgb, name=self.label_source.where(ppm)),
                             superpixels=sp, superpixel_labels=labels, where=str(image_path))


def find_lfw_split(data_dir, split: str, *, superpixels: bool = True) -> LfwPartsFiles:
    """Checks one split's files and reads its label and superpixel files (see :func:`load_lfw_parts`)."""
    if split not in SPLITS + ("all",):
        raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
    root = _find_root(data_dir)
    splits = SPLITS if split == "all" else (split,)
    names = []
    for s in splits:
        names += read_split_list(root / _LIST_FILES[s])
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{root}: split list(s) {splits} name images more than once: {', '.join(dup[:5])}")

    img_dir = root / "lfw_funneled"
    img_paths = [img_dir / n.rsplit("_", 1)[0] / f"{n}.jpg" for n in names]
    missing = [str(p) for p, n in zip(img_paths, names) if not p.is_file()]
    if missing:
        raise _missing_error("funneled image(s)", missing, str)

    gt = _find_members(root, _GT_IMAGES)
    if gt is None:
        raise DataError(
            f"{root}: pixel labels missing: neither {root / (_GT_IMAGES + '.tgz')} nor the folder "
            f"{root / _GT_IMAGES}/ (holding <Person>_NNNN.ppm) exists. {_WHERE}"
        )
    ppm_names = [f"{n}.ppm" for n in names]
    ppm_bytes = gt.read(ppm_names)
    missing = [m for m in ppm_names if m not in ppm_bytes]
    if missing:
        raise _missing_error(f"label image(s) in {gt.path}", missing, gt.where)

    sp_src = lab_src = sp_maps = sp_labels = None
    if superpixels:
        sp_src = _find_members(root, _SP_MAPS)
        lab_src = _find_members(root, _SP_LABELS)
        dat_names = [f"{n}.dat" for n in names]
        if sp_src is not None:
            raw = sp_src.read(dat_names)
            missing = [m for m in dat_names if m not in raw]
            if missing:
                raise _missing_error(f"superpixel map(s) in {sp_src.path}", missing, sp_src.where)
            sp_maps = [read_superpixel_map(raw[m], name=sp_src.where(m)) for m in dat_names]
        if lab_src is not None and sp_maps is not None:
            raw = lab_src.read(dat_names)
            missing = [m for m in dat_names if m not in raw]
            if missing:
                raise _missing_error(f"superpixel label file(s) in {lab_src.path}", missing, lab_src.where)
            sp_labels = tuple(read_superpixel_labels(raw[m], name=lab_src.where(m)) for m in dat_names)
        else:
            lab_src = None
    return LfwPartsFiles(root=root, split=split, names=tuple(names), image_paths=tuple(img_paths),
                         label_source=gt, label_bytes=ppm_bytes,
                         superpixel_source=sp_src if sp_maps is not None else None, superpixels=sp_maps,
                         superpixel_label_source=lab_src, superpixel_labels=sp_labels)


def lfw_parts_at_size(examples, count: int, size: int, split: str, source: str, *, superpixels: bool = True,
                      chunk: int = 128) -> LfwPartsData:
    """Resizes decoded examples (:meth:`LfwPartsFiles.examples`, or the same read back from the
    TFDS dataset) to ``size`` x ``size``, ``chunk`` images at a time; keeps the class ids at
    full resolution and the superpixels when every example has them and ``superpixels``."""
    images = np.empty((count, size, size, 3), np.float32)
    labels = np.empty((count, size, size, NUM_CLASSES), np.float32)
    labels_full = None
    names, sp_maps, sp_labels = [], [], []
    progress = progress_bar(count, f"LFW Part Labels ({split}): decoding and resizing {count} images and labels "
                                   f"to {size}x{size} ({source})")
    examples = iter(examples)
    start = 0
    while start < count:
        batch = [ex for _, ex in zip(range(min(chunk, count - start)), examples)]
        stop = start + len(batch)
        if stop == start:
            break
        if labels_full is None:
            labels_full = np.empty((count,) + batch[0].class_ids.shape, np.uint8)
        for ex in batch:
            if ex.class_ids.shape != labels_full.shape[1:]:
                raise DataError(
                    f"{ex.where}: image is {ex.image.shape[1]}x{ex.image.shape[0]}, the others "
                    f"{labels_full.shape[2]}x{labels_full.shape[1]}"
                )
            names.append(ex.name)
            sp_maps.append(ex.superpixels)
            sp_labels.append(ex.superpixel_labels)
        labels_full[start:stop] = np.stack([ex.class_ids for ex in batch])
        images[start:stop] = resize_bilinear(np.stack([ex.image for ex in batch]), size)
        labels[start:stop] = resize_one_hot(labels_full[start:stop], size, NUM_CLASSES)
        progress.update(stop)
        start = stop
    extra = next(examples, None) is not None
    if len(names) != count or extra:
        raise DataError(f"{source}: {'more than ' if extra else ''}{len(names)} {split} examples read, "
                        f"{count} expected")
    has_sp = superpixels and count > 0 and all(m is not None for m in sp_maps)
    has_sp_labels = has_sp and all(lab is not None for lab in sp_labels)
    return LfwPartsData(
        images=images,
        labels=labels,
        labels_full=labels_full,
        names=tuple(names),
        split=split,
        source=source,
        superpixels=np.stack(sp_maps).astype(np.int32) if has_sp else None,
        superpixel_labels=tuple(sp_labels) if has_sp_labels else None,
    )


def load_lfw_parts(data_dir, size: int = 32, split: str | None = None, *, superpixels: bool = True,
                   chunk: int = 128) -> LfwPartsData:
    """Loads one split of LFW Part Labels (see the module docstring).

    Args:
      data_dir: the ``lfw_parts`` folder or a parent holding ``lfw_parts/``.
      size: working resolution of ``images`` / ``labels``.
      split: "train" (1500), "validation" (500), "test" (927) or "all"
        (the three lists concatenated). Required.
      superpixels: load superpixel maps / labels when their folders or
        archives are present (set False to skip them).
      chunk: images decoded and resized per step (bounds memory).
    """
    files = find_lfw_split(data_dir, split, superpixels=superpixels)
    return lfw_parts_at_size(files.examples(), len(files.names), size, split, str(files.root),
                             superpixels=superpixels, chunk=chunk)
