"""The common surface of every method: a `keras.Model` whose `train_step` holds the algorithm.

Subclasses implement `train_step` (the learning algorithm) and `infer` (what a
prediction is: G(x), refinement from zeros, G(x) refined, ...). This base class
turns `infer` into `predict_step` and `test_step`, tracks every loss term and
metric with `keras.metrics.Mean` (so values aggregate correctly over batches
and replicas), and owns the input standardization and the refinement configs.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable

import keras
import tensorflow as tf

from tfsp import oracles
from tfsp.refine import RefineConfig, refine
from tfsp.spec import TaskSpec


class Standardize(keras.layers.Layer):
    """(x - mean) / std with the statistics stored as (non-trainable) weights.

    Keeping them as weights puts them in checkpoints and SavedModels, so a
    restored or served model standardizes exactly as the trained one did.
    """

    def __init__(self, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self._initial = (mean, std)

    def build(self, input_shape):
        dim = input_shape[-1]
        mean, std = self._initial
        self.mean = self.add_weight(shape=(dim,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(dim,), initializer="ones", trainable=False, name="std")
        if mean is not None:
            self.mean.assign(tf.reshape(tf.cast(mean, tf.float32), [dim]))
            self.std.assign(tf.reshape(tf.cast(std, tf.float32), [dim]))

    def call(self, x):
        return (x - self.mean) / self.std


class RatioMetric(keras.metrics.Metric):
    """Σ numerator / Σ denominator over everything seen (e.g. global IoU), in percent."""

    def __init__(self, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.numerator = self.add_variable(shape=(), initializer="zeros", name="numerator")
        self.denominator = self.add_variable(shape=(), initializer="zeros", name="denominator")

    def update_state(self, numerator, denominator):
        self.numerator.assign_add(tf.reduce_sum(numerator))
        self.denominator.assign_add(tf.reduce_sum(denominator))

    def result(self):
        return 100.0 * tf.math.divide_no_nan(self.numerator, self.denominator)


@dataclasses.dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial tuples: gradient *ascent on the value-regression loss* w.r.t. y.

    steps / step_size: the ascent (DVN: one step of the inference step size).
    from_ground_truth: fraction of examples started from y*; the rest start from
        the method's default start (zeros for DVN, G(x) for LDRSP).
    """

    steps: int = 1
    step_size: float = 0.5
    normalize: bool = False
    from_ground_truth: float = 0.5
    objective: str = "loss"
    """"loss": ascend D's regression loss (DVN paper Sec. 3.2, LDRSP/ALEN); "value": ascend D's
    value instead, which is what the published DVN code's adversarial branch computes
    (it evaluates the value gradient there, not the loss gradient)."""

    def __post_init__(self):
        if self.objective not in ("loss", "value"):
            raise ValueError(f"adversarial objective must be 'loss' or 'value', got {self.objective!r}")


class StructuredModel(keras.Model):
    """Base class of the methods; see the module docstring."""

    def __init__(self, spec: TaskSpec, test_refine: RefineConfig = RefineConfig(),
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.test_refine = test_refine
        self.seed = int(seed)
        self.standardize = (Standardize(spec.feature_mean, spec.feature_std, name="standardize")
                            if spec.feature_mean is not None else None)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="sampling_seed")
        self.train_trackers: Dict[str, keras.metrics.Mean] = {"loss": keras.metrics.Mean(name="loss")}
        self.eval_trackers: Dict[str, keras.metrics.Metric] = {}
        for prefix in self.prediction_kinds():
            for name in spec.metrics:
                full = prefix + name
                self.eval_trackers[full] = keras.metrics.Mean(name=full)
            for name in spec.ratio_metrics:
                full = prefix + name
                self.eval_trackers[full] = RatioMetric(name=full)

    # ----- what subclasses provide -------------------------------------------------------
    def prediction_kinds(self):
        """Metric-name prefixes of the predictions `infer` returns: "" for the final one,
        "inference_net_" for G(x) alone where there is a G."""
        return ("",)

    def infer(self, x, training=False, return_trajectory=False) -> Dict[str, tf.Tensor]:
        """{"y": final relaxed prediction, optional "y_inference_net", "value", "trajectory"}."""
        raise NotImplementedError

    # ----- shared machinery ------------------------------------------------------------------
    def prepare_inputs(self, x):
        x = tf.cast(x, tf.float32)
        return self.standardize(x) if self.standardize is not None else x

    @property
    def metrics(self):
        return [*self.train_trackers.values(), *self.eval_trackers.values()]

    def add_train_statistics(self, names: Iterable[str]) -> None:
        """Declares the loss terms and statistics `train_step` reports besides "loss"."""
        for name in names:
            self.train_trackers[name] = keras.metrics.Mean(name=name)

    def track(self, **values) -> None:
        for name, value in values.items():
            self.train_trackers[name].update_state(value)

    def train_results(self):
        return {name: tracker.result() for name, tracker in self.train_trackers.items()}

    def call(self, x, training=False):
        return self.infer(x, training=training)["y"]

    def update_eval_metrics(self, outputs, y_true) -> None:
        kinds = {"": outputs["y"]}
        if "y_inference_net" in outputs:
            kinds["inference_net_"] = outputs["y_inference_net"]
        for prefix, y in kinds.items():
            y_discrete = oracles.binarize(y)
            for name, fn in self.spec.metrics.items():
                self.eval_trackers[prefix + name].update_state(fn(y_discrete, y_true))
            for name, (numerator, denominator) in self.spec.ratio_metrics.items():
                self.eval_trackers[prefix + name].update_state(numerator(y_discrete, y_true),
                                                               denominator(y_discrete, y_true))

    def test_step(self, data):
        x, y_true = data[0], tf.cast(data[1], tf.float32)
        self.update_eval_metrics(self.infer(x), y_true)
        return {name: tracker.result() for name, tracker in self.eval_trackers.items()}

    def predict_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        outputs = self.infer(x)
        outputs["labels"] = oracles.binarize(outputs["y"])
        return outputs

    # ----- helpers shared by the sampling methods --------------------------------------------
    def uniform(self, shape):
        return keras.random.uniform(shape, seed=self.seed_generator)

    def adversarial_samples(self, regression_loss_fn, value_fn, y_true, y_start,
                            config: AdversarialConfig):
        """Tuples that the value network currently scores worst: ascend its loss from y* or y_start.

        regression_loss_fn(y) -> per-example loss of D against the oracle at y
        (the oracle value is treated as a constant in each step, as in DVN);
        value_fn(y) -> D's value, ascended instead when config.objective == "value".
        """
        batch = tf.shape(y_true)[0]
        from_truth = self.uniform([batch]) < config.from_ground_truth
        from_truth = tf.reshape(from_truth, [-1] + [1] * (y_true.shape.rank - 1))
        y0 = tf.where(from_truth, y_true, y_start)
        ascent = RefineConfig(steps=config.steps, step_size=config.step_size,
                              normalize=config.normalize, projection=self.spec.projection)
        objective = regression_loss_fn if config.objective == "loss" else value_fn
        return tf.stop_gradient(refine(objective, y0, ascent).y)

    def stratified_samples(self, y_true):
        """Interpolations y = (1 - t) y* + t u, u ~ U[0,1], with t stratified over the batch.

        They cover the range of oracle values evenly, from y* (t≈0) to noise (t≈1).
        """
        batch = tf.shape(y_true)[0]
        strata = (tf.cast(tf.range(batch), tf.float32) + self.uniform([batch])) / tf.cast(batch, tf.float32)
        t = tf.reshape(strata, [-1] + [1] * (y_true.shape.rank - 1))
        noise = self.uniform(tf.shape(y_true))
        if self.spec.multiclass:
            noise = noise / tf.reduce_sum(noise, axis=-1, keepdims=True)
        return (1.0 - t) * y_true + t * noise
