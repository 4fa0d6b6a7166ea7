"""Weizmann horses (Borenstein & Ullman): binary figure/ground segmentation.

Layout (the database as distributed, e.g. the Kaggle mirror
"weizmann-horse-database")::

    weizmann_horse_db/
      rgb/horse001.jpg ... horse328.jpg            colour images
      figure_ground/horse001.jpg ... horse328.jpg  grey masks, foreground > 127

``data_dir`` may be that folder or a parent holding ``weizmann_horse_db/``.
Images and masks are paired by file name (``horse001``); they are NOT at the
same resolution (the masks match the original grey images) but have the same
framing, so each is resized independently to ``size`` x ``size``:

* image: bilinear (antialiased), float32 in [0, 1];
* mask: grey / 255, bilinear (antialiased), then foreground = value > 0.5
  (i.e. grey > 127 at the working resolution), float32 {0, 1} ``[..., 1]``.

Masks saved as 3-channel JPEGs are accepted when the channels agree to within
8 grey levels; otherwise the file is rejected ("mask is not single-channel").

Split. The 200 / 28 / 100 train / validation / test split used in the
literature (Li et al. 2013) is not published with the data, so this package
defines one: with the examples in file-name order (horse001 ... horse328),
``perm = numpy.random.RandomState(seed).permutation(328)`` (seed 0 by default);
train = ``perm[:200]``, validation = ``perm[200:228]``, test = ``perm[228:]``
(see :func:`horse_split`). Report this whenever a number on it is quoted.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from tfsp.data.errors import DataError
from tfsp.data.images import decode_image, decode_mask, progress_bar, resize_bilinear, resize_mask

__all__ = ["HorseFiles", "SegmentationData", "find_horse_files", "horses_at_size", "load_horses",
           "horse_split", "HORSE_SPLIT_SIZES"]

HORSE_SPLIT_SIZES = (200, 28, 100)
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm")

_LAYOUT_HELP = (
    "expected layout: <data_dir>/rgb/horseNNN.jpg (colour images) and "
    "<data_dir>/figure_ground/horseNNN.jpg (grey masks, foreground > 127), or a parent "
    "folder holding weizmann_horse_db/ with that layout. The data is the Weizmann Horse "
    "Database (Borenstein & Ullman, ECCV 2002/2004), available e.g. as the Kaggle dataset "
    '"weizmann-horse-database".'
)


@dataclasses.dataclass(frozen=True, eq=False)
class SegmentationData:
    """Images and binary masks at the working resolution.

    Attributes:
      images: float32 ``[N, size, size, 3]`` in [0, 1].
      labels: float32 ``[N, size, size, 1]``, 1 = foreground.
      names: file stems in file-name order (``"horse001"``, ...).
      source: the folder the data was read from.
    """

    images: np.ndarray
    labels: np.ndarray
    names: tuple
    source: str

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices) -> "SegmentationData":
        """The examples at ``indices`` (e.g. ``horse_split()["train"]``)."""
        idx = np.asarray(indices, dtype=np.int64)
        return SegmentationData(self.images[idx], self.labels[idx], tuple(self.names[i] for i in idx), self.source)


def _find_root(data_dir) -> Path:
    base = Path(os.fspath(data_dir)).expanduser()
    for cand in (base, base / "weizmann_horse_db"):
        if (cand / "rgb").is_dir() and (cand / "figure_ground").is_dir():
            return cand
    if not base.exists():
        raise DataError(f"{base}: folder not found; {_LAYOUT_HELP}")
    missing = [str(base / d) for d in ("rgb", "figure_ground") if not (base / d).is_dir()]
    raise DataError(f"{base}: missing {', '.join(missing)}; {_LAYOUT_HELP}")


def _list_images(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in _IMAGE_EXTS and not p.name.startswith("."):
            if p.stem in out:
                raise DataError(f"{p}: two files for {p.stem!r} ({out[p.stem].name} and {p.name})")
            out[p.stem] = p
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class HorseFiles:
    """The image / mask file pairs of a horse folder, checked to pair up.

    :func:`load_horses` reads them through :meth:`examples`; so does the TFDS
    builder ``weizmann_horses`` (tfsp.data.tfds_builders), which stores the
    decoded pixels.

    Attributes:
      root: the folder holding ``rgb/`` and ``figure_ground/``.
      names: file stems in file-name order (``"horse001"``, ...).
      images, masks: stem -> path of the colour image / the mask.
    """

    root: Path
    names: tuple
    images: dict
    masks: dict

    def files(self) -> list:
        """Every file :meth:`examples` reads, image then mask for each name."""
        return [p for stem in self.names for p in (self.images[stem], self.masks[stem])]

    def examples(self):
        """Yields ``(stem, image uint8 [H, W, 3], mask uint8 [h, w] grey)`` in file-name order."""
        for stem in self.names:
            yield stem, decode_image(self.images[stem]), decode_mask(self.masks[stem])


def find_horse_files(data_dir) -> HorseFiles:
    """The horse folder in ``data_dir`` (or its ``weizmann_horse_db/``), every image paired with its mask."""
    root = _find_root(data_dir)
    rgb = _list_images(root / "rgb")
    masks = _list_images(root / "figure_ground")
    no_mask = sorted(set(rgb) - set(masks))
    no_image = sorted(set(masks) - set(rgb))
    if no_mask:
        raise DataError(
            f"{rgb[no_mask[0]]}: image without a mask (expected {root / 'figure_ground' / (no_mask[0] + '.jpg')}); "
            f"{len(no_mask)} image(s) without masks: {', '.join(no_mask[:10])}{' ...' if len(no_mask) > 10 else ''}"
        )
    if no_image:
        raise DataError(
            f"{masks[no_image[0]]}: mask without an image (expected {root / 'rgb' / (no_image[0] + '.jpg')}); "
            f"{len(no_image)} mask(s) without images: {', '.join(no_image[:10])}{' ...' if len(no_image) > 10 else ''}"
        )
    names = tuple(sorted(rgb))
    if not names:
        raise DataError(f"{root / 'rgb'}: no images found; {_LAYOUT_HELP}")
    return HorseFiles(root=root, names=names, images=rgb, masks=masks)


def horses_at_size(examples, count: int, size: int, source: str) -> SegmentationData:
    """Resizes decoded ``(stem, image, mask)`` examples (:meth:`HorseFiles.examples`, or the
    same read back from the TFDS dataset) to ``size`` x ``size``, as the module docstring says."""
    images = np.empty((count, size, size, 3), np.float32)
    labels = np.empty((count, size, size, 1), np.float32)
    names = []
    progress = progress_bar(count, f"Weizmann horses: decoding and resizing {count} images "
                            f"and masks to {size}x{size} ({source})")
    for i, (stem, image, mask) in enumerate(examples):
        if i == count:
            raise DataError(f"{source}: more than the {count} horse examples expected")
        images[i] = resize_bilinear(image, size)
        labels[i, ..., 0] = resize_mask(mask, size)
        names.append(stem)
        progress.update(i + 1)
    if len(names) != count:
        raise DataError(f"{source}: {len(names)} horse examples read, {count} expected")
    return SegmentationData(images=images, labels=labels, names=tuple(names), source=source)


def load_horses(data_dir, size: int = 32) -> SegmentationData:
    """Loads all Weizmann horses at ``size`` x ``size``; see the module docstring."""
    files = find_horse_files(data_dir)
    return horses_at_size(files.examples(), len(files.names), size, str(files.root))


def horse_split(n: int = 328, seed: int = 0, sizes=HORSE_SPLIT_SIZES, source: str | None = None) -> dict:
    """Deterministic seeded split of ``n`` examples into train / validation / test.

    ``perm = numpy.random.RandomState(seed).permutation(n)``; train is
    ``perm[:sizes[0]]``, validation the next ``sizes[1]``, test the last
    ``sizes[2]`` (200 / 28 / 100 by default, which requires n = 328).
    Returns ``dict(train=..., validation=..., test=...)`` of int64 index
    arrays in permutation order. Sizes that do not fit ``n`` raise a
    DataError naming ``source`` (the horse folder) and the setting to change.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) != 3 or min(sizes) < 0 or sum(sizes) != n:
        # Sizes in the proportions asked for (the default ones if those are unusable) that do fit.
        weights = sizes if len(sizes) == 3 and min(sizes) >= 0 and sum(sizes) else list(HORSE_SPLIT_SIZES)
        a, b = (int(round(n * w / sum(weights))) for w in weights[:2])
        fitting = [a, min(b, n - a), max(0, n - a - b)]
        raise DataError(
            f"{source or 'horse data'}: {n} horse images found, but data.split_sizes asks for {sizes} "
            f"(train, validation, test: {sum(sizes)} images in all); change it with "
            f"--set data.split_sizes=[a,b,c], three sizes adding up to {n}, e.g. "
            f"--set data.split_sizes=[{','.join(map(str, fitting))}]")
    n_train, n_val, n_test = sizes
    perm = np.random.RandomState(seed).permutation(n).astype(np.int64)
    return dict(
        train=perm[:n_train],
        validation=perm[n_train : n_train + n_val],
        test=perm[n_train + n_val :],
    )
