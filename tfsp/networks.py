"""Networks: value / energy networks D(x, y) and inference networks G(x).

A value network exposes two halves so that refinement is cheap:
`precompute(x)` computes everything that depends on x alone once, and
`score(context, y)` evaluates the part that touches y at every step.
`call((x, y))` is their composition and returns one scalar per example
(logits; the method decides whether a sigmoid head maps them to a value in (0, 1)).

Every network returns float32, also when its layers compute in bfloat16 (a mixed-precision
dtype policy, `ExperimentConfig.mixed_precision`): y, oracles, losses and the refinement
state stay float32.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _he_normal(fan_in_seed=None):
    # The DVN / SPEN reference code initialises with N(0, 2 / fan_in).
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=fan_in_seed)


@keras.saving.register_keras_serializable("tfsp")
class ReplicaDropout(keras.layers.Dropout):
    """keras.layers.Dropout with its own mask on every replica under tf.distribute.

    Keras' Dropout seeds its masks from a SeedGenerator whose state every replica shares,
    so all replicas would drop the same positions; here the replica id is folded into
    the seed. With one replica it is exactly keras.layers.Dropout.
    """

    def call(self, inputs, training=False):
        context = tf.distribute.get_replica_context()
        if not (training and self.rate > 0) or context is None or context.num_replicas_in_sync == 1:
            return super().call(inputs, training=training)
        seed = tf.random.experimental.stateless_fold_in(tf.cast(self.seed_generator.next(), tf.int64),
                                                        context.replica_id_in_sync_group)
        return tf.nn.experimental.stateless_dropout(inputs, self.rate, seed, noise_shape=self.noise_shape)


def track_layer_lists(layer: keras.layers.Layer) -> None:
    """Makes the layers that `layer` holds in lists (a network's hidden layers) also its
    attributes `<list name>_<index>`. Keras tracks list items, but tf.train.Checkpoint sees only
    attributes: without this, the weights of list-held layers were written only where an
    optimizer referred to them, so a network no optimizer trains (an averaged copy) was not
    saved at all and a checkpoint's layout depended on its optimizers."""
    lists = {name: value for name, value in vars(layer).items()
             if not name.startswith("_") and isinstance(value, (list, tuple)) and value
             and all(isinstance(item, keras.layers.Layer) for item in value)}
    for name, items in lists.items():
        for index, item in enumerate(items):
            setattr(layer, f"{name}_{index}", item)


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
        self.feature_dropout = ReplicaDropout(self.dropout) if self.dropout else None
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
        track_layer_lists(self)

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
        energy = tf.reduce_sum(tf.cast(y, context.dtype) * context, axis=-1)
        if self.num_pairwise:
            energy += tf.squeeze(self.label_energy(tf.nn.softplus(self.label_interaction(y))), -1)
        return tf.cast(energy, tf.float32)

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
                self.hidden_layers.append(ReplicaDropout(self.dropout, name=f"dropout_{i}"))
        self.logits = keras.layers.Dense(self.num_labels, kernel_regularizer=reg, name="logits")
        track_layer_lists(self)

    def call(self, x, training=False):
        h = x
        for layer in self.hidden_layers:
            h = layer(h, training=training)
        return tf.cast(self.logits(h), tf.float32)

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels, "hidden": self.hidden,
                "activation": self.activation, "dropout": self.dropout,
                "weight_decay": self.weight_decay}


# ----- segmentation ---------------------------------------------------------------------------
def _conv(filters, stride, name, activation="relu", transpose=False, use_bias=True):
    layer = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return layer(filters, 5, strides=stride, padding="same", activation=activation,
                 use_bias=use_bias, name=name)


class _ImageAndMaskStem(keras.layers.Layer):
    """The first 5×5 convolution of a network on concat(x, y), split into its x and y parts.

    conv(concat(x, y)) = conv_x(x) + conv_y(y): conv_x(x) is computed once per image
    (`precompute`) and every refinement step only pays for conv_y(y).
    """

    def __init__(self, filters, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.image_part = _conv(filters, 1, "image_part", activation=None)
        self.mask_part = _conv(filters, 1, "mask_part", activation=None, use_bias=False)
        self.activation = keras.activations.get(activation)

    def precompute(self, x):
        return self.image_part(x)

    def score(self, context, y):
        return self.activation(context + self.mask_part(y))


@keras.saving.register_keras_serializable("tfsp")
class FCN(keras.Model):
    """The segmentation FCN of the DVN/LDRSP papers: three 5×5 convolutions (64, 128, 128
    filters; strides 1, 2, 2) and two 5×5 deconvolutions back to full resolution, one logit
    per class (per pixel). The FCN baseline, and LDRSP's inference network G."""

    def __init__(self, num_classes: int, filters=(64, 128, 128), **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.filters = tuple(int(f) for f in filters)
        f1, f2, f3 = self.filters
        self.body = [_conv(f1, 1, "conv_1"), _conv(f2, 2, "conv_2"), _conv(f3, 2, "conv_3"),
                     _conv(f1, 2, "deconv_1", transpose=True)]
        self.logits = _conv(self.num_classes, 2, "deconv_2", activation=None, transpose=True)
        track_layer_lists(self)

    def call(self, x, training=False):
        h = x - 0.5
        for layer in self.body:
            h = layer(h)
        return tf.cast(self.logits(h), tf.float32)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "filters": self.filters}


@keras.saving.register_keras_serializable("tfsp")
class ConvValueNet(ValueNetwork):
    """DVN's segmentation value network: three 5×5 convolutions (64, 128, 128; strides 1, 2, 2)
    on concat(x, y), two dense layers (384, 192) and one output logit (the estimated IoU after a
    sigmoid); dropout 0.25 (keep 0.75) on the first dense layer.

    activation: of every hidden layer; the papers' ReLU, or e.g. "leaky_relu", which cannot
    die: with ReLU, D trained on horses lost every active unit and became a constant, whose
    zero gradient then left refinement (and so the inference tuples) at y = 0."""

    def __init__(self, filters=(64, 128, 128), dense=(384, 192), dropout: float = 0.25,
                 activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.filters = tuple(int(f) for f in filters)
        self.dense = tuple(int(d) for d in dense)
        self.dropout = float(dropout)
        self.activation = activation
        self.stem = _ImageAndMaskStem(self.filters[0], activation=activation, name="stem")
        self.convs = [_conv(self.filters[1], 2, "conv_2", activation=activation),
                      _conv(self.filters[2], 2, "conv_3", activation=activation)]
        self.flatten = keras.layers.Flatten()
        self.hidden = [keras.layers.Dense(d, activation=activation, name=f"dense_{i}")
                       for i, d in enumerate(self.dense)]
        self.dropout_layer = ReplicaDropout(self.dropout)
        self.output_logit = keras.layers.Dense(1, name="value")
        track_layer_lists(self)

    def precompute(self, x, training=False):
        return self.stem.precompute(x - 0.5)

    def score(self, context, y, training=False):
        h = self.stem.score(context, y)
        for layer in self.convs:
            h = layer(h)
        h = self.flatten(h)
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if i == 0 and self.dropout:
                h = self.dropout_layer(h, training=training)
        return tf.cast(tf.squeeze(self.output_logit(h), -1), tf.float32)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dense": self.dense,
                "dropout": self.dropout, "activation": self.activation}


@keras.saving.register_keras_serializable("tfsp")
class PatchDiscriminator(ValueNetwork):
    """LDRSP's PatchGAN-like discriminator: the FCN architecture on concat(x, y) with one output
    channel, i.e. one logit per pixel (regressed to the per-pixel F1 oracle after a sigmoid)."""

    def __init__(self, filters=(64, 128, 128), **kwargs):
        super().__init__(**kwargs)
        self.filters = tuple(int(f) for f in filters)
        f1, f2, f3 = self.filters
        self.stem = _ImageAndMaskStem(f1, name="stem")
        self.body = [_conv(f2, 2, "conv_2"), _conv(f3, 2, "conv_3"),
                     _conv(f1, 2, "deconv_1", transpose=True)]
        self.logits = _conv(1, 2, "deconv_2", activation=None, transpose=True)
        track_layer_lists(self)

    def precompute(self, x, training=False):
        return self.stem.precompute(x - 0.5)

    def score(self, context, y, training=False):
        h = self.stem.score(context, y)
        for layer in self.body:
            h = layer(h)
        return tf.cast(tf.squeeze(self.logits(h), -1), tf.float32)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}
