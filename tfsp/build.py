"""Building a method from its configuration: the networks of the task's kind, the optimizers
and the registered method (tfsp.methods.registry), with every variable made before fit.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Dict

import keras
import tensorflow as tf

from tfsp.config import ConfigError, ExperimentConfig, NetworkConfig, OptimizerConfig
from tfsp.methods import StructuredModel, registry
from tfsp.methods.keras_build import mark_built
from tfsp.networks import FCN, ConvValueNet, MultiLabelEnergy, MultiLabelMLP, PatchDiscriminator
from tfsp.spec import TaskSpec


def build_value_network(spec: TaskSpec, config: NetworkConfig):
    kind = config.kind or ("energy" if len(spec.output_shape) == 1 else "conv")
    if kind == "energy":
        return MultiLabelEnergy(spec.output_shape[0], hidden=config.hidden,
                                num_pairwise=config.num_pairwise, weight_decay=config.weight_decay,
                                spen_second_layer=config.spen_second_layer, dropout=config.dropout,
                                name="value_net")
    if kind == "conv":
        return ConvValueNet(filters=config.filters, dense=config.dense, dropout=config.dropout,
                            activation=config.activation, name="value_net")
    if kind == "patch":
        return PatchDiscriminator(filters=config.filters, name="value_net")
    raise ValueError(f"unknown value network kind {kind!r}; valid: ['energy', 'conv', 'patch']")


def build_inference_network(spec: TaskSpec, config: NetworkConfig, name: str = "inference_net"):
    kind = config.kind or ("mlp" if len(spec.output_shape) == 1 else "fcn")
    if kind == "mlp":
        return MultiLabelMLP(spec.output_shape[0], hidden=config.hidden, activation=config.activation,
                             dropout=config.dropout, weight_decay=config.weight_decay,
                             name=name)
    if kind == "fcn":
        return FCN(spec.output_shape[-1], filters=config.filters, name=name)
    raise ValueError(f"unknown inference network kind {kind!r}; valid: ['mlp', 'fcn']")


def build_optimizer(config: OptimizerConfig, steps_per_epoch: int, updates_at=lambda run_updates: run_updates):
    """`updates_at(run_updates)`: the optimizer's own update count after that many training steps
    (StructuredModel.optimizer_updates_at), to which decay_epochs, epochs of the run, are mapped."""
    learning_rate: Any = config.learning_rate
    if config.decay_epochs:
        boundaries = [updates_at(int(e * steps_per_epoch)) for e in config.decay_epochs]
        values = [config.learning_rate * config.decay_factor ** i for i in range(len(boundaries) + 1)]
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    kwargs = {"clipnorm": config.clipnorm} if config.clipnorm else {}
    if config.name == "adam":
        return keras.optimizers.Adam(learning_rate, beta_1=config.beta_1, **kwargs)
    if config.name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=config.momentum, **kwargs)
    raise ValueError(f"unknown optimizer {config.name!r}; valid: ['adam', 'sgd']")


@dataclasses.dataclass(frozen=True)
class MethodParts:
    """What a method's `from_settings` (tfsp.methods.registry) builds from: networks of the task's
    kind configured by the experiment's value_net / inference_net, and the number of updates
    in a number of epochs."""
    spec: TaskSpec
    config: ExperimentConfig
    steps_per_epoch: int

    def value_net(self):
        return build_value_network(self.spec, self.config.value_net)

    def averaged_value_net(self, momentum: float):
        """The second value network a method's `value_average` = momentum > 0 needs
        (StructuredModel.init_value_average); None for 0."""
        return self.value_net() if momentum else None

    def inference_net(self, name: str = "inference_net"):
        return build_inference_network(self.spec, self.config.inference_net, name=name)

    def updates(self, epochs: float) -> int:
        return int(round(epochs * self.steps_per_epoch))


def optimizer_settings(settings) -> Dict[str, OptimizerConfig]:
    """The OptimizerConfig fields of a method's settings, by name: the model's `compile` arguments."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if isinstance(getattr(settings, f.name), OptimizerConfig)}


def build_method(config: ExperimentConfig, spec: TaskSpec, steps_per_epoch: int) -> StructuredModel:
    """The method named by config.algorithm (or config.method), built from config.settings and
    compiled with its optimizer(s)."""
    if config.oracle:
        spec = dataclasses.replace(spec, oracle=config.oracle)
        spec.oracle_fn  # noqa: B018 -- fails early, naming the valid oracles
        algorithm = config.algorithm or config.method
        if config.oracle.startswith("discrete_") and algorithm not in ("dvn", "ldrsp"):
            raise ConfigError(f"oracle={config.oracle} is piecewise constant in y, a regression target "
                              f"for DVN's and LDRSP's value networks only; {algorithm} differentiates "
                              "or does not use its oracle")
    try:
        method = registry.get(config.algorithm or config.method)
    except KeyError as e:
        raise ConfigError(f"method {config.method!r}: {e.args[0]}") from None
    if not isinstance(config.settings, method.settings_class):
        raise ConfigError(f"method {config.method!r} takes {method.settings_class.__name__}, "
                          f"got settings {type(config.settings).__name__}")
    model = method.model_class.from_settings(config.settings, MethodParts(spec, config, steps_per_epoch),
                                             spec=spec, seed=config.seed, crop_mode=config.crop_mode,
                                             name=config.method)
    optimizers = {name: build_optimizer(settings, steps_per_epoch,
                                        lambda run_updates, name=name: model.optimizer_updates_at(name, run_updates))
                  for name, settings in optimizer_settings(config.settings).items()}
    if set(optimizers) != set(model.optimizer_names):
        raise TypeError(f"{method.settings_class.__name__} has optimizers {sorted(optimizers)}, "
                        f"{method.model_class.__name__} compiles {sorted(model.optimizer_names)}")
    model.compile(**optimizers, jit_compile=config.jit_compile)
    build(model, spec)
    return model


def build(model: StructuredModel, spec: TaskSpec) -> None:
    """Creates every variable (networks and optimizers) so checkpoints can be restored before fit."""
    shape = spec.input_shape
    if spec.crop_size:
        shape = (spec.crop_size, spec.crop_size, *shape[2:])
    model.build_networks(tf.zeros((2, *shape)))
    mark_built(model)
    for optimizer in model.optimizers().values():
        optimizer.build(model.trainable_variables)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers made in the block compute in the Keras dtype policy `name` (e.g. mixed_bfloat16:
    bfloat16 compute, float32 variables); "" keeps float32. Layers keep the policy they were
    made with, so the global policy is restored after the block."""
    if not name:
        yield
        return
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(name)
    except ValueError as e:
        raise ConfigError(f"mixed_precision: {e}") from None
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
