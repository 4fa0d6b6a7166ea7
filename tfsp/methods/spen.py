"""Structured Prediction Energy Networks trained as a structured SVM (Belanger & McCallum, ICML 2016).

The energy network's score V(x, y) = −E(x, y) (networks.MultiLabelEnergy: local potentials
Σ y_i b_i(x) plus a global label energy) is the value every energy method of tfsp ascends; so
"low energy" = "high score" and the SSVM hinge of the paper,
    [Δ(ȳ, y*) − E(x, ȳ) + E(x, y*)]₊ = [Δ(ȳ, y*) + V(x, ȳ) − V(x, y*)]₊,
uses the cost Δ = 1 − oracle (F1 for multi-label) and the cost-augmented prediction
    ȳ = argmax_y V(x, y) + Δ(y, y*)
found by the shared projected-gradient refine(). The feature network b(x) is first
pre-trained as independent logistic classifiers (the paper's first stage) for
`pretrain_steps` steps inside the same train_step, then everything is trained jointly.
Prediction: refine() ascends V from y = 0.

The helpers `cost`, `ssvm_hinge` and `EnergyValue` are shared with InfNet and the implicit trainer.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import tensorflow as tf

from tfsp.config import OptimizerConfig, at_least
from tfsp.methods.base import StructuredModel
from tfsp.methods.registry import register
from tfsp.networks import ValueNetwork
from tfsp.refine import RefineConfig, refine


def cost(spec, y, y_true):
    """Δ(y, y*) = 1 − oracle(y, y*) per example (the SSVM margin; F1-based for multi-label)."""
    return 1.0 - spec.oracle_fn(y, y_true)


def ssvm_hinge(spec, value_fn, y_bar, y_true):
    """Per-example [Δ(ȳ, y*) + V(ȳ) − V(y*)]₊ (energy convention: [Δ − E(ȳ) + E(y*)]₊)."""
    return tf.nn.relu(cost(spec, y_bar, y_true) + value_fn(y_bar) - value_fn(y_true))


class EnergyValue:
    """Mix-in: the energy methods ascend the raw score V = −E, not a sigmoid of it."""

    def value_map(self, context, training=False, net=None):
        net = net or self.value_net
        return lambda y: net.score(context, y, training=training)


@dataclasses.dataclass
class SPENSettings:
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    test_refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    train_refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    """The cost-augmented inference of training."""
    pretrain_epochs: float = 0.0
    """Epochs of logistic-loss pre-training of the feature network before SSVM training."""

    RANGES: ClassVar = {"pretrain_epochs": at_least(0)}


@register("spen", settings=SPENSettings)
class SPEN(EnergyValue, StructuredModel):
    refines = True

    def __init__(self, spec, value_net: ValueNetwork, settings: Optional[SPENSettings] = None,
                 pretrain_steps: int = 0, **kwargs):
        """pretrain_steps: settings.pretrain_epochs in updates."""
        settings = settings or SPENSettings()
        super().__init__(spec, test_refine=settings.test_refine, **kwargs)
        self.value_net = value_net
        self.train_refine = self.training_refinement(settings.train_refine)
        self.pretrain_steps = int(pretrain_steps)
        self.add_train_statistics(["logistic", "hinge", "pretraining", "cost_augmented_cost"])

    @classmethod
    def from_settings(cls, settings: SPENSettings, parts, **common) -> "SPEN":
        return cls(value_net=parts.value_net(), settings=settings,
                   pretrain_steps=parts.updates(settings.pretrain_epochs), **common)

    def initial_output(self, x, training=False):
        return self.zeros_output(x), {}

    def cost_augmented(self, x, y_true):
        """ȳ = argmax V(x, y) + Δ(y, y*) by refine() from zeros (no gradient to the energy)."""
        value_map = self.value_map(self.value_net.precompute(x))
        objective = lambda y: value_map(y) + cost(self.spec, y, y_true)  # noqa: E731
        return tf.stop_gradient(refine(objective, self.zeros_output(x), self.train_refine).y)

    def train_step(self, data):
        x, y_true = data[0], tf.cast(data[1], tf.float32)
        x = self.prepare_inputs(x)
        batch = self.global_batch(x)
        # The phase is read from the optimizer's step counter, which checkpoints hold.
        pretraining = self.optimizer.iterations < self.pretrain_steps
        # Inference is skipped while only the feature network learns.
        y_bar = tf.cond(pretraining, lambda: self.zeros_output(x), lambda: self.cost_augmented(x, y_true))
        weight = tf.cast(pretraining, tf.float32)
        with tf.GradientTape() as tape:
            context = self.value_net.precompute(x, training=True)
            # Stage 1: the local potentials b(x) as logits of independent logistic classifiers.
            logistic = batch.mean(self.spec.cross_entropy(y_true, context))
            value_fn = self.value_map(context, training=True)
            hinge = batch.mean(ssvm_hinge(self.spec, value_fn, y_bar, y_true))
            joint = hinge + batch.penalty(self.value_net.losses)
            # Exactly zero gradients reach the global energy while pre-training, so Adam leaves it alone.
            total = weight * logistic + (1.0 - weight) * joint
        variables = self.value_net.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        self.track(loss=total, logistic=logistic, hinge=hinge, pretraining=weight / batch.num_replicas,
                   cost_augmented_cost=batch.mean(cost(self.spec, y_bar, y_true)))
        return self.train_results()
