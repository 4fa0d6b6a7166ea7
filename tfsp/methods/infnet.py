"""Inference networks for SPENs (Tu & Gimpel, "Learning Approximate Inference Networks for
Structured Prediction", ICLR 2018), the joint min–max game of their Eq. 5:

    min_E  max_{F, A}  Σ [Δ(F(x), y*) − E(x, F(x)) + E(x, y*)]₊ + λ [−E(x, A(x)) + E(x, y*)]₊

F is the cost-augmented inference network (it replaces cost-augmented gradient inference),
A the test-time inference network. With V = −E (see spen.py) the two hinges are
[Δ(F) + V(F) − V(y*)]₊ and [V(A) − V(y*)]₊. Steps alternate: F and A ascend the objective
(plus `cross_entropy_weight`·cross-entropy to y*, summed over labels: the paper's stabilizing local term), then E
descends it with F(x), A(x) fixed. F and A are separate networks here (the paper also allows
sharing parameters). Prediction: A(x) alone and A(x) refined on V.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Optional

import keras
import tensorflow as tf

from tfsp.config import at_least
from tfsp.methods.base import WithInferenceNetwork, WithInferenceNetworkSettings
from tfsp.methods.registry import register
from tfsp.methods.spen import EnergyValue, cost, ssvm_hinge
from tfsp.networks import ValueNetwork


@dataclasses.dataclass
class InfNetSettings(WithInferenceNetworkSettings):
    """d_optimizer trains the energy, g_optimizer the inference networks F and A."""
    test_weight: float = 1.0
    """λ (Tu & Gimpel 2018 Eq. 5): weight of the test-time inference network's hinge."""
    cross_entropy_weight: float = 1.0
    """Weight of the cross-entropy of F(x) and A(x) to y* in the networks' objective."""

    RANGES: ClassVar = {"test_weight": at_least(0), "cross_entropy_weight": at_least(0)}


@register("infnet", settings=InfNetSettings)
class InfNet(EnergyValue, WithInferenceNetwork):
    """`d_optimizer` trains the energy, `g_optimizer` the inference networks F and A."""

    refines = True

    def __init__(self, spec, inference_net: keras.Model, cost_augmented_net: keras.Model,
                 value_net: ValueNetwork, settings: Optional[InfNetSettings] = None, **kwargs):
        settings = settings or InfNetSettings()
        super().__init__(spec, test_refine=settings.test_refine, **kwargs)
        self.inference_net = inference_net
        self.cost_augmented_net = cost_augmented_net
        self.value_net = value_net
        self.test_weight = float(settings.test_weight)
        self.cross_entropy_weight = float(settings.cross_entropy_weight)
        self.add_train_statistics(["energy_loss", "networks_loss", "hinge_cost_augmented", "hinge_test",
                                   "cross_entropy", "cost_augmented_cost"])

    @classmethod
    def from_settings(cls, settings: InfNetSettings, parts, **common) -> "InfNet":
        return cls(inference_net=parts.inference_net(), cost_augmented_net=parts.inference_net("cost_augmented_net"),
                   value_net=parts.value_net(), settings=settings, **common)

    def build_networks(self, x) -> None:
        super().build_networks(x)
        self.cost_augmented_net(self.prepare_inputs(x))

    def initial_output(self, x, training=False):
        y_a = self.spec.output_probabilities(self.inference_net(x, training=training))
        return y_a, {"y_inference_net": y_a}

    def game_objective(self, value_fn, y_f, y_a, y_true, batch):
        """The two hinges of Eq. 5: this replica's shares of their global-batch means."""
        hinge_f = batch.mean(ssvm_hinge(self.spec, value_fn, y_f, y_true))
        hinge_a = batch.mean(tf.nn.relu(value_fn(y_a) - value_fn(y_true)))
        return hinge_f, hinge_a

    def train_step(self, data):
        x, y_true = data[0], tf.cast(data[1], tf.float32)
        x = self.prepare_inputs(x)
        batch = self.global_batch(x)
        output = self.spec.output_probabilities

        # Max step: F and A against the current energy.
        value_fixed = self.value_map(self.value_net.precompute(x))
        nets = [self.cost_augmented_net, self.inference_net]
        with tf.GradientTape() as tape:
            logits_f = self.cost_augmented_net(x, training=True)
            logits_a = self.inference_net(x, training=True)
            hinge_f, hinge_a = self.game_objective(value_fixed, output(logits_f), output(logits_a), y_true, batch)
            # Summed over the outputs, like the energy hinges it is weighed against (spec.cross_entropy
            # is a per-output mean, which left it too weak to keep A near the labels on Bibtex).
            num_outputs = float(math.prod(self.spec.output_shape))
            cross_entropy = num_outputs * batch.mean(self.spec.cross_entropy(y_true, logits_f)
                                                     + self.spec.cross_entropy(y_true, logits_a))
            networks_loss = (-(hinge_f + self.test_weight * hinge_a) + self.cross_entropy_weight * cross_entropy
                             + batch.penalty([loss for net in nets for loss in net.losses]))
        g_variables = [v for net in nets for v in net.trainable_variables]
        self.g_optimizer.apply_gradients(zip(tape.gradient(networks_loss, g_variables), g_variables))

        # Min step: the energy with F(x), A(x) fixed.
        y_f = tf.stop_gradient(output(self.cost_augmented_net(x)))
        y_a = tf.stop_gradient(output(self.inference_net(x)))
        with tf.GradientTape() as tape:
            value_fn = self.value_map(self.value_net.precompute(x, training=True), training=True)
            hinge_f, hinge_a = self.game_objective(value_fn, y_f, y_a, y_true, batch)
            energy_loss = hinge_f + self.test_weight * hinge_a + batch.penalty(self.value_net.losses)
        d_variables = self.value_net.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(energy_loss, d_variables), d_variables))

        self.track(loss=energy_loss, energy_loss=energy_loss, networks_loss=networks_loss,
                   hinge_cost_augmented=hinge_f, hinge_test=hinge_a, cross_entropy=cross_entropy,
                   cost_augmented_cost=batch.mean(cost(self.spec, y_f, y_true)))
        return self.train_results()
