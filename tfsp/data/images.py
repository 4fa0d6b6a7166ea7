"""Shared image helpers and the tf.data pipeline for image segmentation.

Decoding
    :func:`decode_image` reads JPEG / PNG / PPM / anything Pillow knows into a
    uint8 ``[H, W, 3]`` (or ``[H, W]`` grey) array; :func:`read_ppm` is a
    plain NumPy reader for binary (P6) and ASCII (P3) PPM files with precise
    error messages. Every failure raises :class:`~tfsp.data.errors.DataError`
    naming the file.

Resizing
    :func:`resize_bilinear` resizes one image or a stack to the working
    resolution with ``tf.image.resize(method="bilinear", antialias=True)``
    and returns float32 values in [0, 1]. ``antialias=True`` makes
    downsampling (e.g. 250x250 -> 32x32) average over the whole footprint of
    each output pixel, like Pillow's bilinear resize, instead of sampling
    four input pixels. Masks are resized the same way, independently of their
    images, and then thresholded (:func:`resize_mask`), or, for one-hot
    labels, arg-maxed (:func:`resize_one_hot`).

Pipeline
    :func:`segmentation_dataset` batches ``(image, label)`` pairs. In
    training it shuffles with a fixed seed and applies the same random crop
    window and the same random horizontal flip to an image and its label
    (they are concatenated along channels and cropped / flipped as one
    tensor), using stateless random ops whose seeds come from
    ``tf.data.Dataset.random(seed)``: the stream of crops and flips is a
    function of ``seed`` only (and changes from one epoch to the next in a
    reproducible way). In evaluation it yields the full images, in order,
    without augmentation.
"""

from __future__ import annotations

import io
import os
import re
from typing import Union

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from tfsp.data import epochs
from tfsp.data.errors import DataError

PathOrBytes = Union[str, os.PathLike, bytes]

__all__ = [
    "decode_image",
    "decode_mask",
    "read_ppm",
    "resize_bilinear",
    "resize_mask",
    "resize_one_hot",
    "segmentation_dataset",
]


def _describe(source: PathOrBytes, name: str | None) -> str:
    if name is not None:
        return str(name)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return os.fspath(source)


def _open_pil(source: PathOrBytes, name: str | None) -> Image.Image:
    """Open and fully decode an image with Pillow, or raise DataError."""
    where = _describe(source, name)
    try:
        if isinstance(source, (bytes, bytearray)):
            im = Image.open(io.BytesIO(source))
        else:
            im = Image.open(os.fspath(source))
        im.load()  # force decoding now so truncation errors surface here
    except FileNotFoundError as e:
        raise DataError(f"{where}: file not found") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{where}: unreadable or corrupt image ({e})") from e
    return im


def decode_image(source: PathOrBytes, *, name: str | None = None) -> np.ndarray:
    """Decodes a colour image (JPEG, PNG, PPM, ...) to uint8 ``[H, W, 3]``.

    Grey images are replicated to three channels; alpha is dropped.
    ``source`` is a path or the file's bytes; ``name`` is used in error
    messages (defaults to the path).
    """
    im = _open_pil(source, name)
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise DataError(f"{_describe(source, name)}: cannot convert mode {im.mode} to RGB ({e})") from e
    return np.asarray(im, dtype=np.uint8)


def decode_mask(source: PathOrBytes, *, name: str | None = None, max_channel_diff: int = 8) -> np.ndarray:
    """Decodes a grey-level mask to uint8 ``[H, W]``.

    Masks stored as 3-channel images (a common way of saving grey JPEGs) are
    accepted when their channels agree to within ``max_channel_diff`` grey
    levels (JPEG noise); the channel mean is returned. Otherwise the mask is
    rejected with "mask is not single-channel" and the file name.
    """
    where = _describe(source, name)
    im = _open_pil(source, name)
    if im.mode in ("L", "1"):
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if im.mode == "LA":
        return np.asarray(im.getchannel("L"), dtype=np.uint8)
    if im.mode.startswith("I"):  # 16/32-bit grey
        a = np.asarray(im).astype(np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        return np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8)
    try:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    except (OSError, ValueError) as e:
        raise DataError(f"{where}: cannot read mask of mode {im.mode} ({e})") from e
    spread = int((rgb.max(axis=-1) - rgb.min(axis=-1)).max()) if rgb.size else 0
    if spread > max_channel_diff:
        raise DataError(
            f"{where}: mask is not single-channel (its 3 channels differ by up to {spread} grey levels; "
            f"a grey mask saved as RGB may differ by at most {max_channel_diff})"
        )
    return np.round(rgb.mean(axis=-1)).astype(np.uint8)


_PNM_TOKEN = re.compile(rb"\s*(?:#[^\n]*\n\s*)*(\S+)")


def read_ppm(source: PathOrBytes, *, name: str | None = None) -> np.ndarray:
    """Reads a PPM image (binary P6 or ASCII P3) into uint8 ``[H, W, 3]``.

    Header comments (``# ...``) are allowed. Files with ``maxval`` other than
    255 are rescaled to 0..255 (16-bit P6 samples are big-endian, as the
    format specifies). Raises DataError naming the file for a wrong magic
    number, a malformed header or truncated pixel data.
    """
    where = _describe(source, name)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            with open(os.fspath(source), "rb") as f:
                data = f.read()
        except FileNotFoundError as e:
            raise DataError(f"{where}: file not found") from e
        except OSError as e:
            raise DataError(f"{where}: cannot read ({e})") from e
    magic = data[:2]
    if magic not in (b"P6", b"P3"):
        raise DataError(f"{where}: not a PPM file (magic {magic!r}, expected b'P6' or b'P3')")
    pos = 2
    header = []
    for _ in range(3):
        m = _PNM_TOKEN.match(data, pos)
        if m is None:
            raise DataError(f"{where}: truncated PPM header")
        try:
            header.append(int(m.group(1)))
        except ValueError:
            raise DataError(f"{where}: bad PPM header field {m.group(1)[:20]!r}") from None
        pos = m.end()
    width, height, maxval = header
    if width <= 0 or height <= 0 or not 0 < maxval < 65536:
        raise DataError(f"{where}: bad PPM header (width={width}, height={height}, maxval={maxval})")
    count = width * height * 3
    if magic == b"P6":
        # Exactly one whitespace byte separates the header from the raster.
        if pos >= len(data) or data[pos : pos + 1] not in (b" ", b"\t", b"\n", b"\r"):
            raise DataError(f"{where}: missing whitespace after the PPM header")
        pos += 1
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
        need = count * dtype.itemsize
        if len(data) - pos < need:
            raise DataError(
                f"{where}: truncated PPM pixel data ({len(data) - pos} bytes, expected {need} for {width}x{height})"
            )
        pix = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
    else:
        try:
            pix = np.array(data[pos:].split(), dtype=np.int64)
        except ValueError:
            raise DataError(f"{where}: non-integer sample in P3 pixel data") from None
        if pix.size < count:
            raise DataError(f"{where}: truncated PPM pixel data ({pix.size} samples, expected {count})")
        pix = pix[:count]
    if int(pix.max(initial=0)) > maxval:
        raise DataError(f"{where}: sample larger than maxval {maxval}")
    pix = pix.reshape(height, width, 3)
    if maxval != 255:
        pix = np.round(pix.astype(np.float64) * (255.0 / maxval))
    return pix.astype(np.uint8)


# Progress of dataset preparation (decoding and resizing hundreds of images takes a while): the
# launcher sets this from --verbose, as Keras does for fit/evaluate; library calls stay silent.
_progress_verbosity = 0


def set_progress_verbosity(verbose) -> None:
    """0: silent; 1: a progress bar; 2: one line when done ("auto" counts as 1, as in Keras)."""
    global _progress_verbosity
    _progress_verbosity = 1 if verbose == "auto" else int(verbose)


class _Silent:
    def update(self, current, values=None, finalize=None):
        pass


def progress_bar(total: int, description: str):
    """A keras.utils.Progbar over `total` items at the launcher's verbosity (a no-op at 0)."""
    if not _progress_verbosity or not total:
        return _Silent()
    import keras

    print(description, flush=True)
    return keras.utils.Progbar(total, verbose=_progress_verbosity, unit_name="image")


def resize_bilinear(images, size, *, batch: int = 256) -> np.ndarray:
    """Bilinear, antialiased resize to ``size`` (int or (height, width)).

    ``images``: one image ``[H, W, C]`` / ``[H, W]`` or a stack ``[N, H, W, C]``,
    uint8 (scaled by 1/255) or float (assumed already in [0, 1]).
    Returns float32 in [0, 1] with the same rank as the input. Stacks are
    processed ``batch`` images at a time to bound memory.
    """
    hw = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    a = np.asarray(images)
    scale = 1.0 / 255.0 if a.dtype == np.uint8 else 1.0
    squeeze_channel = a.ndim == 2
    if squeeze_channel:
        a = a[..., None]
    single = a.ndim == 3
    if single:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"expected an image [H,W,C] or a stack [N,H,W,C], got shape {np.shape(images)}")
    out = np.empty((a.shape[0],) + hw + (a.shape[3],), np.float32)
    for start in range(0, a.shape[0], batch):
        chunk = tf.cast(tf.convert_to_tensor(a[start : start + batch]), tf.float32) * scale
        if chunk.shape[1:3] != hw:
            chunk = tf.image.resize(chunk, hw, method="bilinear", antialias=True)
        out[start : start + batch] = tf.clip_by_value(chunk, 0.0, 1.0).numpy()
    if single:
        out = out[0]
    if squeeze_channel:
        out = out[..., 0]
    return out


def resize_mask(mask, size, *, threshold: float = 0.5) -> np.ndarray:
    """Resizes a grey mask (uint8 0..255 or float [0,1]) and thresholds it.

    Returns float32 {0, 1} of the same rank: 1 where the bilinearly resized
    value (in [0, 1]) is > ``threshold``.
    """
    return (resize_bilinear(mask, size) > threshold).astype(np.float32)


def resize_one_hot(class_ids, size, num_classes: int, *, batch: int = 128) -> np.ndarray:
    """Integer class maps ``[N, H, W]`` -> one-hot float32 ``[N, size, size, C]``.

    Each class's indicator is resized bilinearly (antialiased, so it becomes
    the class's share of the output pixel's footprint) and the arg-max is
    one-hot encoded (ties go to the lower class index).
    """
    ids = np.asarray(class_ids)
    if ids.ndim != 3:
        raise ValueError(f"expected class maps [N,H,W], got shape {ids.shape}")
    hw = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    out = np.empty((ids.shape[0],) + hw + (num_classes,), np.float32)
    for start in range(0, ids.shape[0], batch):
        one_hot = tf.one_hot(tf.convert_to_tensor(ids[start : start + batch], tf.int32), num_classes)
        if one_hot.shape[1:3] != hw:
            one_hot = tf.image.resize(one_hot, hw, method="bilinear", antialias=True)
        out[start : start + batch] = tf.one_hot(tf.argmax(one_hot, axis=-1), num_classes).numpy()
    return out


def with_fold_channel(labels: np.ndarray, folds: int) -> np.ndarray:
    """labels [N, ..., C] with one more channel holding each example's fold, index mod `folds`
    (the splits are random permutations already), constant over the example, so crops and
    flips keep it; a method that trains on held-out folds (LDRSP heldout_folds) reads it off."""
    fold = (np.arange(len(labels)) % folds).astype(labels.dtype)
    channel = np.broadcast_to(fold.reshape((-1,) + (1,) * (labels.ndim - 1)), labels.shape[:-1] + (1,))
    return np.concatenate([labels, channel], axis=-1)


def segmentation_dataset(
    images,
    labels,
    batch_size: int,
    *,
    training: bool,
    crop_size: int | None = 24,
    flip: bool = True,
    seed: int,
    drop_remainder: bool = False,
    first_epoch: int | None = None,
    split: str | None = None,
    folds: int = 0,
) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data.Dataset`` of ``(image, label)`` pairs.

    Args:
      images: float32 ``[N, H, W, 3]`` in [0, 1] (32x32 here).
      labels: float32 ``[N, H, W, C]``: C=1 binary mask (horses) or C=3
        one-hot (LFW parts).
      batch_size: examples per batch.
      training: if True, shuffle (a full permutation, new every epoch), take a random
        ``crop_size`` x ``crop_size`` window (the same for image and label;
        ``crop_size=None`` keeps the full image) and, if ``flip``, flip image
        and label left-right together with probability 1/2. If False, yield
        the full images in their original order, without augmentation.
      seed: seeds the shuffle and the stateless crop/flip ops; two datasets
        built with the same arguments yield the same batches, epoch by epoch.
      drop_remainder: drop a last partial batch (a DataError if that leaves no batch).
      first_epoch: training only. None: one epoch per iteration of the dataset;
        k: an endless stream of epochs k, k + 1, ... whose randomness depends on
        (seed, epoch) alone (see :mod:`tfsp.data.epochs`), so a resumed run sees
        the batches an uninterrupted one would.
      split: the split's name in errors (default "training" / "evaluation").
      folds: training only, if > 0: the labels get one more channel, each example's fold
        (with_fold_channel), for a method that trains on held-out folds.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.float32)
    if training and folds:
        labels = with_fold_channel(labels, folds)
    if images.ndim != 4 or labels.ndim != 4:
        raise ValueError(f"images and labels must be [N,H,W,C]; got {images.shape} and {labels.shape}")
    if images.shape[:3] != labels.shape[:3]:
        raise ValueError(f"images {images.shape} and labels {labels.shape} differ in N, H or W")
    n, h, w, c_img = images.shape
    c_lab = labels.shape[3]
    num_batches = epochs.check_batches(
        n, batch_size, drop_remainder=drop_remainder, split=split or ("training" if training else "evaluation"),
        batch_setting="data.batch_size" if training else "data.eval_batch_size")
    if not training:
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

    if crop_size is not None and not (0 < crop_size <= min(h, w)):
        raise ValueError(f"crop_size {crop_size} does not fit images of size {h}x{w}")
    ch, cw = (h, w) if crop_size is None else (crop_size, crop_size)
    images_t, labels_t = tf.constant(images), tf.constant(labels)

    def augment(index, example_key):
        image, label = tf.gather(images_t, index), tf.gather(labels_t, index)
        op_seeds = tf.random.experimental.stateless_split(example_key, num=2)
        both = tf.concat([image, label], axis=-1)
        if crop_size is not None:
            both = tf.image.stateless_random_crop(both, [ch, cw, c_img + c_lab], seed=op_seeds[0])
        if flip:
            both = tf.image.stateless_random_flip_left_right(both, seed=op_seeds[1])
        both = tf.ensure_shape(both, [ch, cw, c_img + c_lab])
        return both[..., :c_img], both[..., c_img:]

    def make_epoch(key):
        # The order and one key per example (its crop and flip) are functions of the epoch's key.
        order_key, example_keys = tf.unstack(tf.random.experimental.stateless_split(key, num=2))
        per_example = tf.random.experimental.stateless_split(example_keys, num=n)
        epoch = tf.data.Dataset.from_tensor_slices((epochs.permutation(n, order_key), per_example))
        epoch = epoch.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return epoch.batch(batch_size, drop_remainder=drop_remainder)

    return epochs.epochs(make_epoch, seed, num_batches, first_epoch=first_epoch)
