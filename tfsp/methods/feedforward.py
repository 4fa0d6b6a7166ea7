"""Feed-forward baseline: the inference network G(x) trained with cross-entropy alone.

This is the papers' NN / FCN baseline (and InfNet's pre-training); prediction is G(x).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfsp.config import OptimizerConfig
from tfsp.methods.base import StructuredModel
from tfsp.methods.registry import register


@dataclasses.dataclass
class FeedForwardSettings:
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)


@register("feedforward", settings=FeedForwardSettings)
class FeedForward(StructuredModel):

    def __init__(self, spec, inference_net: keras.Model, **kwargs):
        super().__init__(spec, **kwargs)
        self.inference_net = inference_net
        self.add_train_statistics(["cross_entropy"])

    @classmethod
    def from_settings(cls, settings: FeedForwardSettings, parts, **common) -> "FeedForward":
        return cls(inference_net=parts.inference_net(), **common)

    def initial_output(self, x, training=False):
        return self.spec.output_probabilities(self.inference_net(x, training=training)), {}

    def train_step(self, data):
        x, y_true = data[0], tf.cast(data[1], tf.float32)
        x = self.prepare_inputs(x)
        batch = self.global_batch(x)
        with tf.GradientTape() as tape:
            logits = self.inference_net(x, training=True)
            cross_entropy = batch.mean(self.spec.cross_entropy(y_true, logits))
            total = cross_entropy + batch.penalty(self.inference_net.losses)
        variables = self.inference_net.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        self.track(loss=total, cross_entropy=cross_entropy)
        return self.train_results()
