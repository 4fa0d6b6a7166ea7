"""Deep Value Networks (Gygli, Norouzi & Angelova, ICML 2017).

D(x, y) = sigmoid(score) estimates the oracle value v*(y, y*). Each training step
generates tuples with the current D (all inside the compiled step):
  * inference samples: refinement on D from zeros (the test-time procedure);
  * adversarial samples: ascent on D's cross-entropy loss w.r.t. y, started from
    y* or from zeros (DVN Sec. 3.2);
  * optionally ground truth (v* = 1), stratified interpolations y* -> noise and
    mismatched ground truth (another example's y*);
and trains D with cross-entropy against v*. Prediction is projected gradient
ascent on D from y = 0.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict, Optional

import tensorflow as tf

from tfsp.config import FRACTION, PROBABILITY, OptimizerConfig, at_least, each
from tfsp.methods.base import StructuredModel
from tfsp.methods.tuples import (REFERENCE_SAMPLE_KINDS, AdversarialConfig, adversarial_samples,
                                 checked_sample_weights, reference_samples, mixed_starts,
                                 score_samples, trajectory_samples)
from tfsp.methods.registry import register
from tfsp.networks import ValueNetwork
from tfsp.refine import RefineConfig, refine

SAMPLE_KINDS = ("inference", "adversarial", "trajectory") + REFERENCE_SAMPLE_KINDS
"""trajectory: an iterate drawn uniformly, per example, from the inference refinement's path
(y_0 .. y_T), so D is also fitted where ascent passes, not only where it ends."""


@dataclasses.dataclass
class DVNSettings:
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    """Of the value network."""
    test_refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    train_refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    """The refinement that makes the inference tuples."""
    adversarial: AdversarialConfig = dataclasses.field(default_factory=AdversarialConfig)
    train_with_test_refine: bool = False
    """Inference tuples come from exactly the test-time refinement (test_refine; with crop_mode
    average each training crop is refined as a test crop is), not train_refine."""
    inference_from_ground_truth: float = 0.0
    """Fraction of the inference tuples whose refinement starts from y* instead of zeros."""
    sample_weights: Dict[str, float] = dataclasses.field(
        default_factory=lambda: {"inference": 1.0, "adversarial": 1.0})
    """Weight of each kind of generated tuple (SAMPLE_KINDS: inference, adversarial, trajectory,
    ground_truth, stratified, mismatched: another example's ground truth)."""

    value_average: float = 0.0
    """Momentum of an exponential moving average of the value network's weights that prediction
    ascends (StructuredModel.init_value_average); 0: the network itself."""

    RANGES: ClassVar = {"inference_from_ground_truth": PROBABILITY, "sample_weights": each(at_least(0)),
                        "value_average": FRACTION}


@register("dvn", settings=DVNSettings)
class DVN(StructuredModel):
    refines = True

    def __init__(self, spec, value_net: ValueNetwork, settings: Optional[DVNSettings] = None,
                 value_net_average: Optional[ValueNetwork] = None, **kwargs):
        settings = settings or DVNSettings()
        super().__init__(spec, test_refine=settings.test_refine, **kwargs)
        self.value_net = value_net
        self.init_value_average(settings.value_average, value_net_average)
        self.train_refine = (self.on_task(settings.test_refine.without_test_time_options())
                             if settings.train_with_test_refine else self.training_refinement(settings.train_refine))
        self.adversarial = settings.adversarial
        self.inference_from_ground_truth = float(settings.inference_from_ground_truth)
        self.sample_weights = checked_sample_weights(settings.sample_weights, SAMPLE_KINDS, "DVN")
        self.add_train_statistics([f"loss_{k}" for k in self.sample_weights]
                                  + [f"oracle_{k}" for k in self.sample_weights]
                                  + [f"value_{k}" for k in self.sample_weights]
                                  + ([] if "ground_truth" in self.sample_weights else ["value_ground_truth"]))

    @classmethod
    def from_settings(cls, settings: DVNSettings, parts, **common) -> "DVN":
        return cls(value_net=parts.value_net(), settings=settings,
                   value_net_average=parts.averaged_value_net(settings.value_average), **common)

    def initial_output(self, x, training=False):
        return self.zeros_output(x), {}

    def generate_samples(self, x, y_true):
        """{kind: y} for the enabled sample kinds, generated with the current D (no gradient to D)."""
        context = self.value_net.precompute(x)
        value_fn = self.value_map(context)
        zeros = self.zeros_output(x)
        samples = {}
        if "inference" in self.sample_weights or "trajectory" in self.sample_weights:
            start = zeros
            if self.inference_from_ground_truth:
                # Refinement started at y* shows D where ascent leaves the truth (SEAL's DVN).
                start = mixed_starts(self, y_true, zeros, self.inference_from_ground_truth)
            with_path = "trajectory" in self.sample_weights
            result = refine(value_fn, start, self.train_refine, return_trajectory=with_path)
            if "inference" in self.sample_weights:
                samples["inference"] = tf.stop_gradient(result.y)
            if with_path:
                samples["trajectory"] = trajectory_samples(self, result.trajectory)
        if "adversarial" in self.sample_weights:
            def regression_loss(y):
                target = tf.stop_gradient(self.spec.oracle_fn(y, y_true))
                logits = self.value_net.score(context, y)
                return tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
            samples["adversarial"] = adversarial_samples(self, regression_loss, value_fn, y_true, zeros,
                                                              self.adversarial)
        samples.update(reference_samples(self, self.sample_weights, y_true))
        return samples

    def train_step(self, data):
        x, y_true = data[0], tf.cast(data[1], tf.float32)
        x = self.prepare_inputs(x)
        batch = self.global_batch(x)
        samples = self.generate_samples(x, y_true)
        targets = {kind: self.spec.oracle_fn(y, y_true) for kind, y in samples.items()}
        with tf.GradientTape() as tape:
            context = self.value_net.precompute(x, training=True)
            logits = score_samples(self.value_net, context, samples, training=True)
            losses = {kind: batch.mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets[kind],
                                                                               logits=logits[kind]))
                      for kind in samples}
            # A weighted mean, so enabling another kind of tuple does not scale the step size.
            data_loss = tf.add_n([self.sample_weights[k] * v for k, v in losses.items()]) / sum(
                self.sample_weights.values())
            total = data_loss + batch.penalty(self.value_net.losses)
        variables = self.value_net.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        self.update_value_average(self.optimizer.iterations)

        statistics = {"loss": total}
        statistics.update({f"loss_{k}": v for k, v in losses.items()})
        statistics.update({f"oracle_{k}": batch.mean(v) for k, v in targets.items()})
        # D's value beside each kind's oracle (oracle_<kind>): where D over- or underrates. Read off
        # the forward pass the update used (before the update, with dropout), as Keras' training
        # metrics are: scoring every kind again after the update cost a tenth of each step.
        statistics.update({f"value_{k}": batch.mean(tf.sigmoid(v)) for k, v in logits.items()})
        if "ground_truth" not in logits:
            statistics["value_ground_truth"] = batch.mean(tf.sigmoid(self.value_net.score(context, y_true)))
        self.track(**statistics)
        return self.train_results()
