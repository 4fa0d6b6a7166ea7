"""Oracle value functions v*(y, y*): how good a (relaxed) structured output is.

All functions are batched and vectorized: the first axis is the batch, and the
value is returned per example (shape [B]) or, for the per-position oracle, per
position (shape [B, ...]). Relaxed outputs in [0, 1] are scored with the
element-wise min/max extension of set intersection and union (DVN Eq. 6-10,
LDRSP Eq. 1-4), so the oracles agree with their discrete versions on {0, 1}
inputs and are defined (and differentiable almost everywhere) in between.

Convention for empty sets: when both y and y* are empty (all zeros) the
prediction is perfect, so F1 and IoU are 1.
"""

from __future__ import annotations

import tensorflow as tf

_EPS = 1e-8


def _sum_non_batch(t: tf.Tensor) -> tf.Tensor:
    """Sums every axis but the first; a rank-1 tensor is returned as is."""
    rank = t.shape.rank
    if rank is None:
        raise ValueError(f"oracle inputs need a known rank, got {t}")
    if rank == 1:
        return t
    return tf.reduce_sum(t, axis=list(range(1, rank)))


def _intersection_union(y, y_true):
    y = tf.convert_to_tensor(y, tf.float32)
    y_true = tf.cast(y_true, y.dtype)
    intersection = _sum_non_batch(tf.minimum(y, y_true))
    union = _sum_non_batch(tf.maximum(y, y_true))
    return intersection, union


def intersection(y, y_true):
    """Per-example |y ∩ y*| = Σ min(y, y*)."""
    return _intersection_union(y, y_true)[0]


def union(y, y_true):
    """Per-example |y ∪ y*| = Σ max(y, y*)."""
    return _intersection_union(y, y_true)[1]


def soft_f1(y, y_true):
    """Per-example F1 = 2|y ∩ y*| / (|y ∩ y*| + |y ∪ y*|) with min/max for ∩/∪.

    Equal to 2|y ∩ y*| / (|y| + |y*|) since min + max = a + b.
    """
    intersection, union = _intersection_union(y, y_true)
    denominator = intersection + union
    return tf.where(denominator > _EPS, 2.0 * intersection / tf.maximum(denominator, _EPS), 1.0)


def soft_iou(y, y_true):
    """Per-example intersection over union with min/max for ∩/∪."""
    intersection, union = _intersection_union(y, y_true)
    return tf.where(union > _EPS, intersection / tf.maximum(union, _EPS), 1.0)


def _with_class_axis(y):
    """A single-channel (binary) output becomes two classes [1 - y, y]."""
    if y.shape[-1] == 1:
        return tf.concat([1.0 - y, y], axis=-1)
    return y


def per_position_f1(y, y_true):
    """F1 over the class axis (last) at every position (LDRSP Eq. 11); shape [B, ...].

    A binary mask with one channel is treated as the two classes (background,
    foreground), so a position's value is 1 exactly when it is labelled right.
    """
    y = _with_class_axis(tf.convert_to_tensor(y, tf.float32))
    y_true = _with_class_axis(tf.cast(y_true, tf.float32))
    intersection = tf.reduce_sum(tf.minimum(y, y_true), axis=-1)
    total = tf.reduce_sum(y + y_true, axis=-1)
    return tf.where(total > _EPS, 2.0 * intersection / tf.maximum(total, _EPS), 1.0)


def soft_pixel_accuracy(y, y_true):
    """Mean over positions of Σ_c min(y_c, y*_c): pixel accuracy, relaxed; shape [B].

    With one-hot y* this is the mean probability given to the true class, and
    with one-hot y it is exactly the fraction of positions labelled right.
    """
    y = _with_class_axis(tf.convert_to_tensor(y, tf.float32))
    y_true = _with_class_axis(tf.cast(y_true, tf.float32))
    agreement = tf.reduce_sum(tf.minimum(y, y_true), axis=-1)
    return tf.reduce_mean(agreement, axis=tf.range(1, tf.rank(agreement)))


def pixel_accuracy(y, y_true):
    """Per-example fraction of positions whose arg-max class matches; shape [B]."""
    y = _with_class_axis(tf.convert_to_tensor(y, tf.float32))
    y_true = _with_class_axis(tf.cast(y_true, tf.float32))
    correct = tf.cast(tf.equal(tf.argmax(y, axis=-1), tf.argmax(y_true, axis=-1)), tf.float32)
    return tf.reduce_mean(correct, axis=tf.range(1, tf.rank(correct)))


ORACLES = {
    "f1": soft_f1,
    "iou": soft_iou,
    "per_position_f1": per_position_f1,
    "pixel_accuracy": soft_pixel_accuracy,
}


def get_oracle(name: str):
    """The oracle registered as `name`; the error lists the valid names."""
    try:
        return ORACLES[name]
    except KeyError:
        raise ValueError(f"unknown oracle {name!r}; valid: {sorted(ORACLES)}") from None


def binarize(y, multiclass: bool, threshold: float = 0.5):
    """Discrete labels from a relaxed output: one-hot arg-max over the last axis for class
    distributions (multiclass), otherwise every element thresholded."""
    y = tf.convert_to_tensor(y)
    if multiclass:
        return tf.one_hot(tf.argmax(y, axis=-1), y.shape[-1], dtype=y.dtype)
    return tf.cast(y >= threshold, y.dtype)


def on_discrete_output(oracle, class_axis: bool):
    """`oracle` scored on the discrete output prediction reads off y (one-hot arg-max over a
    class axis, else every element thresholded at 0.5) instead of on y itself. Not in the
    papers: a value network regressed to it gains nothing from making y more confident without
    changing its arg-max, which the relaxed oracles reward. Piecewise constant in y, so only a
    regression target (never differentiated)."""
    def discrete(y, y_true):
        y = tf.convert_to_tensor(y, tf.float32)
        return oracle(binarize(y, multiclass=class_axis and y.shape[-1] > 1), y_true)
    return discrete


ORACLES.update({
    "discrete_f1": on_discrete_output(soft_f1, class_axis=False),
    "discrete_iou": on_discrete_output(soft_iou, class_axis=False),
    "discrete_per_position_f1": on_discrete_output(per_position_f1, class_axis=True),
    "discrete_pixel_accuracy": on_discrete_output(soft_pixel_accuracy, class_axis=True),
})
