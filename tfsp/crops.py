"""Test-time inference on overlapping crops (DVN / LDRSP segmentation protocol).

Networks are trained on crop_size×crop_size crops; a full image is covered by a
grid×grid grid of crops (36 crops of 24×24 on a 32×32 image). Two ways to combine:
  * average: refine every crop on its own, then average the crop outputs per pixel;
  * joint: refine the whole mask at once; a step uses, at every pixel, the mean of
    the gradients of the crops covering it (DVN Table 4, "joint inference").
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import tensorflow as tf

CROP_MODES = ("average", "joint")


def crop_offsets(full: int, crop: int, grid: int) -> List[Tuple[int, int]]:
    """grid×grid top-left corners spread evenly from 0 to full - crop (rounded to pixels)."""
    if crop > full:
        raise ValueError(f"crop size {crop} exceeds the image size {full}")
    starts = np.unique(np.round(np.linspace(0, full - crop, grid)).astype(int)) if grid > 1 else np.array([0])
    if len(starts) != min(grid, full - crop + 1):
        raise ValueError(f"cannot place {grid} distinct crops of {crop} in {full} pixels")
    return [(int(i), int(j)) for i in starts for j in starts]


def extract_crops(images: tf.Tensor, offsets, crop: int) -> tf.Tensor:
    """[B, H, W, C] -> [B * K, crop, crop, C], example-major (the K crops of example 0 first)."""
    crops = tf.stack([images[:, i:i + crop, j:j + crop, :] for i, j in offsets], axis=1)
    shape = tf.shape(crops)
    return tf.reshape(crops, tf.concat([[shape[0] * len(offsets)], shape[2:]], 0))


def coverage(full: int, offsets, crop: int) -> np.ndarray:
    """[full, full, 1] how many crops cover each pixel."""
    count = np.zeros((full, full, 1), np.float32)
    for i, j in offsets:
        count[i:i + crop, j:j + crop] += 1
    return count


def average_crops(crops: tf.Tensor, offsets, full: int) -> tf.Tensor:
    """Inverse of extract_crops: [N * K, crop, crop, C] -> [N, full, full, C], the per-pixel mean."""
    k = len(offsets)
    crop = crops.shape[1]
    shape = tf.shape(crops)
    grouped = tf.reshape(crops, tf.concat([[shape[0] // k, k], shape[1:]], 0))
    total = tf.add_n([
        tf.pad(grouped[:, n], [[0, 0], [i, full - crop - i], [j, full - crop - j], [0, 0]])
        for n, (i, j) in enumerate(offsets)])
    return total / coverage(full, offsets, crop)


def mean_gradient_identity(y: tf.Tensor, inverse_coverage: np.ndarray) -> tf.Tensor:
    """Identity whose gradient is divided by the crop coverage, so summing the crops'
    values gives each pixel the *mean* of the gradients of the crops covering it."""

    @tf.custom_gradient
    def identity(t):
        return tf.identity(t), lambda upstream: upstream * inverse_coverage

    return identity(y)
