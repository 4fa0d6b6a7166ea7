"""Networks: value / energy networks D(x, y) and inference networks G(x).

A value network exposes two halves so that refinement is cheap:
`precompute(x)` computes everything that depends on x alone once, and
`score(context, y)` evaluates the part that touches y at every step.
`call((x, y))` is their composition and returns one scalar per example
(logits; the method decides whether a sigmoid head maps them to a value in (0, 1)).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


def _he_normal(fan_in_seed=None):
    # The DVN / SPEN reference code initialises with N(0, 2 / fan_in).
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=fan_in_seed)


class ValueNetwork(keras.Model):
    """Interface of every value / energy network D(x, y) -> logits [B]."""

    def precompute(self, x, training=False):
        raise NotImplementedError

    def score(self, context, y, training=False):
        raise NotImplementedError

    def call(self, inputs, training=False):
        x, y = inputs
        return self.score(self.precompute(x, training=training), y, training=training)


@keras.saving.register_keras_serializable("tfsp")
class MultiLabelEnergy(ValueNetwork):
    """The SPEN / DVN multi-label energy (Belanger & McCallum 2016 Eq. 4-5; Gygli et al. 2017).

    E(x, y) = Σ_i y_i b_i(x)  +  vᵀ softplus(M y)
    with b(x) a feature MLP with softplus units (`hidden` sizes) and a linear
    output of one potential per label; with `spen_second_layer` the local term is
    Σ_i y_i B_iᵀ softplus(b(x)) as in SPEN Eq. 4.
    """

    def __init__(self, num_labels: int, hidden=(150,), num_pairwise: int = 16,
                 weight_decay: float = 0.0, spen_second_layer: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.hidden = tuple(int(h) for h in hidden)
        self.num_pairwise = int(num_pairwise)
        self.weight_decay = float(weight_decay)
        self.spen_second_layer = bool(spen_second_layer)
        self.dropout = float(dropout)
        # keras L2(c) adds c·Σw²; the reference code adds wd·Σw²/2.
        reg = keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None
        self.feature_layers = [
            keras.layers.Dense(h, activation="softplus", kernel_initializer=_he_normal(),
                               kernel_regularizer=reg, name=f"feature_{i}")
            for i, h in enumerate(self.hidden)]
        self.feature_dropout = keras.layers.Dropout(self.dropout) if self.dropout else None
        width = self.hidden[-1] if self.spen_second_layer else self.num_labels
        self.local_potentials = keras.layers.Dense(width, kernel_initializer=_he_normal(),
                                                   kernel_regularizer=reg, name="local")
        if self.spen_second_layer:
            self.local_projection = keras.layers.Dense(self.num_labels, use_bias=False,
                                                       kernel_initializer=_he_normal(),
                                                       kernel_regularizer=reg, name="local_B")
        if self.num_pairwise:
            self.label_interaction = keras.layers.Dense(self.num_pairwise, use_bias=False,
                                                        kernel_initializer=_he_normal(),
                                                        kernel_regularizer=reg, name="global_M")
            self.label_energy = keras.layers.Dense(1, use_bias=False, kernel_initializer=_he_normal(),
                                                   kernel_regularizer=reg, name="global_v")

    def precompute(self, x, training=False):
        h = x
        for layer in self.feature_layers:
            h = layer(h)
        if self.feature_dropout is not None:
            h = self.feature_dropout(h, training=training)
        h = self.local_potentials(h)
        if self.spen_second_layer:
            h = self.local_projection(tf.nn.softplus(h))
        return h

    def score(self, context, y, training=False):
        energy = tf.reduce_sum(y * context, axis=-1)
        if self.num_pairwise:
            energy += tf.squeeze(self.label_energy(tf.nn.softplus(self.label_interaction(y))), -1)
        return energy

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels, "hidden": self.hidden,
                "num_pairwise": self.num_pairwise, "weight_decay": self.weight_decay,
                "spen_second_layer": self.spen_second_layer, "dropout": self.dropout}


@keras.saving.register_keras_serializable("tfsp")
class MultiLabelMLP(keras.Model):
    """Inference network G(x): an MLP with one logit per label (LDRSP / InfNet / the NN baseline)."""

    def __init__(self, num_labels: int, hidden=(150, 150), activation: str = "relu",
                 dropout: float = 0.0, weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.dropout = float(dropout)
        self.weight_decay = float(weight_decay)
        reg = keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None
        self.hidden_layers = []
        for i, h in enumerate(self.hidden):
            self.hidden_layers.append(keras.layers.Dense(h, activation=activation,
                                                         kernel_regularizer=reg, name=f"hidden_{i}"))
            if self.dropout:
                self.hidden_layers.append(keras.layers.Dropout(self.dropout, name=f"dropout_{i}"))
        self.logits = keras.layers.Dense(self.num_labels, kernel_regularizer=reg, name="logits")

    def call(self, x, training=False):
        h = x
        for layer in self.hidden_layers:
            h = layer(h, training=training)
        return self.logits(h)

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels, "hidden": self.hidden,
                "activation": self.activation, "dropout": self.dropout,
                "weight_decay": self.weight_decay}


def expected_input_size(shape) -> int:
    return int(math.prod(int(s) for s in shape))
