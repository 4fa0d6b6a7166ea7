"""What a method needs to know about a task: shapes, oracle, metrics, output space."""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfsp import oracles

PerExampleMetric = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Static description of a structured prediction task.

    input_shape / output_shape: per-example shapes (no batch axis).
    oracle: name in `tfsp.oracles.ORACLES`; the value v*(y, y*) that value
        networks regress and adversarial samples attack.
    projection: the feasible set of relaxed outputs ("clip": [0, 1] per
        element; "simplex": a distribution over the last axis per position).
    metrics: name -> per-example metric on *discrete* predictions (in percent),
        averaged over the evaluation set.
    ratio_metrics: name -> (numerator, denominator) per-example functions whose
        sums over the evaluation set are divided (e.g. global IoU).
    primary_metric: the metric that model selection and reports lead with.
    The oracle may differ between methods of one task (e.g. IoU for DVN, per-pixel F1 for
    LDRSP's patch discriminator): `dataclasses.replace(spec, oracle=...)`.
    feature_mean / feature_std: standardization of x fitted on the training
        split (None: x is used as given, e.g. images already in [0, 1]).
    """

    name: str
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    oracle: str
    projection: str
    metrics: Mapping[str, PerExampleMetric]
    primary_metric: str
    ratio_metrics: Mapping[str, Tuple[PerExampleMetric, PerExampleMetric]] = dataclasses.field(
        default_factory=dict)
    feature_mean: Optional[np.ndarray] = None
    feature_std: Optional[np.ndarray] = None
    crop_size: Optional[int] = None
    """Segmentation: networks see crop_size×crop_size crops; full images are covered by a
    crop_grid×crop_grid grid of crops at test time (tfsp.crops)."""
    crop_grid: int = 6
    threshold: float = 0.5
    """Outputs with independent elements (not "simplex"): an element is on where y >= threshold.
    The multi-label papers choose it on validation (ExperimentConfig.select_threshold)."""

    @property
    def oracle_fn(self):
        return oracles.get_oracle(self.oracle)

    @property
    def multiclass(self) -> bool:
        return self.projection == "simplex"

    @property
    def spatial(self) -> bool:
        """Whether outputs are masks [H, W, C] (segmentation) rather than label vectors."""
        return len(self.output_shape) == 3

    def output_probabilities(self, logits):
        """Maps an inference network's logits into the feasible set."""
        return tf.nn.softmax(logits) if self.multiclass else tf.sigmoid(logits)

    def cross_entropy(self, y_true, logits):
        """Per-example cross-entropy of logits against (possibly soft) targets, averaged over positions."""
        if self.multiclass:
            per_position = tf.nn.softmax_cross_entropy_with_logits(labels=y_true, logits=logits)
        else:
            per_position = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
        return tf.reduce_mean(per_position, axis=tf.range(1, tf.rank(per_position)))


def metric_sums(spec: TaskSpec, y, y_true, groups: Optional[int] = None) -> Dict[str, Tuple[tf.Tensor, tf.Tensor]]:
    """The one metric routine: {metric: (numerator, denominator)} of relaxed predictions y
    (binarized here) against y_true, summed over the examples. A per-example metric sums its
    values over the number of examples, a ratio metric its numerators over its denominators.
    With `groups`, the examples are that many equal consecutive runs (e.g. the steps of a
    refinement trajectory), each summed alone: [groups] tensors. Sums of several batches (or
    replicas) add up; metric_values turns them into the metrics."""
    y_discrete = oracles.binarize(y, spec.multiclass, spec.threshold)

    def total(values):
        return tf.reduce_sum(values) if groups is None else tf.reduce_sum(tf.reshape(values, [groups, -1]), axis=1)

    sums = {}
    for name, fn in spec.metrics.items():
        values = fn(y_discrete, y_true)
        sums[name] = (total(values), total(tf.ones_like(values)))
    for name, (numerator, denominator) in spec.ratio_metrics.items():
        sums[name] = (total(numerator(y_discrete, y_true)), total(denominator(y_discrete, y_true)))
    return sums


def metric_values(spec: TaskSpec, sums) -> Dict[str, np.ndarray]:
    """The metrics of metric_sums' (accumulated) sums: means of the per-example metrics, pooled
    ratios in percent (as keras.metrics.Mean and RatioMetric compute them); 0 where nothing counted."""
    values = {}
    for name, (numerator, denominator) in sums.items():
        scale = 100.0 if name in spec.ratio_metrics else 1.0
        n, d = scale * np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
        values[name] = np.divide(n, d, out=np.zeros_like(n), where=d != 0)
    return values


def example_f1_percent(y_discrete, y_true):
    return 100.0 * oracles.soft_f1(y_discrete, y_true)


def multilabel_spec(name: str, num_features: int, num_labels: int,
                    feature_mean=None, feature_std=None) -> TaskSpec:
    return TaskSpec(name=name, input_shape=(num_features,), output_shape=(num_labels,),
                    oracle="f1", projection="clip",
                    metrics={"example_f1": example_f1_percent}, primary_metric="example_f1",
                    feature_mean=feature_mean, feature_std=feature_std)


def mean_iou_percent(y_discrete, y_true):
    return 100.0 * oracles.soft_iou(y_discrete, y_true)


def binary_segmentation_spec(name: str, size: int, crop_size: Optional[int], crop_grid: int) -> TaskSpec:
    """Foreground masks [size, size, 1]: mean IoU (per image) and global IoU (summed over the set)."""
    return TaskSpec(name=name, input_shape=(size, size, 3), output_shape=(size, size, 1),
                    oracle="iou", projection="clip",
                    metrics={"mean_iou": mean_iou_percent},
                    ratio_metrics={"global_iou": (oracles.intersection, oracles.union)},
                    primary_metric="mean_iou", crop_size=crop_size, crop_grid=crop_grid)


def pixel_accuracy_percent(y_discrete, y_true):
    return 100.0 * oracles.pixel_accuracy(y_discrete, y_true)


def multiclass_segmentation_spec(name: str, size: int, num_classes: int, crop_size: Optional[int],
                                 crop_grid: int) -> TaskSpec:
    """Class probabilities [size, size, num_classes] on the simplex per pixel: pixel accuracy
    (per image, arg-max vs arg-max, at this working resolution)."""
    return TaskSpec(name=name, input_shape=(size, size, 3), output_shape=(size, size, num_classes),
                    oracle="per_position_f1", projection="simplex",
                    metrics={"pixel_accuracy": pixel_accuracy_percent},
                    primary_metric="pixel_accuracy", crop_size=crop_size, crop_grid=crop_grid)
