"""One experiment end to end: data, method, fit with callbacks, evaluation, results JSON.

The split follows the TensorFlow Model Garden: the task (data + spec) is built from
`config.data`, the method (a `keras.Model` with its own `train_step`) from the rest;
`run` wires them to `fit`, TensorBoard, checkpoints and the results file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfsp import crops, oracles, results, summaries
from tfsp.config import (LOCATION_FIELDS, ConfigError, ExperimentConfig, NetworkConfig, OptimizerConfig,
                         assignments_for, config_differences, describe_differences, validate)
from tfsp.datasets import TaskData, build_task_data
from tfsp.methods import StructuredModel, registry
from tfsp.methods.base import per_example_mean
from tfsp.networks import FCN, ConvValueNet, MultiLabelEnergy, MultiLabelMLP, PatchDiscriminator
from tfsp.refine import project
from tfsp.spec import TaskSpec

STRATEGIES = ("default", "mirrored", "multi_worker")


class CheckpointMismatch(ConfigError):
    """The model directory's checkpoint was written for a different model (another method or
    configuration, or an older version of tfsp whose variables differ)."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message says where and which checkpoint is intact."""


# ----- building blocks -----------------------------------------------------------------------
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


def build_optimizer(config: OptimizerConfig, steps_per_epoch: int):
    learning_rate: Any = config.learning_rate
    if config.decay_epochs:
        boundaries = [int(e * steps_per_epoch) for e in config.decay_epochs]
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
    optimizers = {name: build_optimizer(settings, steps_per_epoch)
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
    # Networks used through precompute/score rather than __call__ are not marked built by
    # Keras although infer() made all their variables: mark every container whose layers
    # are all built (innermost first), so fit needs no sample batch to build the model.
    for layer in reversed(list(model._flatten_layers())):
        inner = list(layer._flatten_layers(include_self=False))
        if not layer.built and inner and all(sub.built for sub in inner):
            layer.built = True
    for optimizer in model.optimizers().values():
        optimizer.build(model.trainable_variables)


# ----- callbacks ---------------------------------------------------------------------------
class StopOnNonFinite(keras.callbacks.Callback):
    """Stops at the first batch whose logs hold a NaN/inf and remembers where."""

    def __init__(self):
        super().__init__()
        self.failure: Optional[str] = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not math.isfinite(float(v))}
        if bad and self.failure is None:
            self.failure = f"epoch {self._epoch + 1}, batch {batch + 1}: non-finite {bad}"
            self.model.stop_training = True


def random_states(model: StructuredModel) -> list:
    """The state of the Keras layers' own random streams (e.g. dropout), which
    `model.weights` leaves out; the method's sampling generator is an attribute of
    the model and so is checkpointed with it."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class EpochCheckpoint(keras.callbacks.Callback):
    """A tf.train.CheckpointManager save at every epoch end whose logs are all finite.

    The checkpoint holds everything training depends on: the networks, every optimizer
    (slots and step counters), the sampling generator and the layers' random streams,
    `extra` state (BestWeights) and the number of finished epochs. With the data
    pipeline's epochs keyed by (seed, epoch), a rerun of the same command resumes at the
    last epoch boundary and continues exactly as the uninterrupted run would have.

    Checkpoints are read from `directory`; they are written there too unless
    `write_directory` is given (multi-worker training: the non-chief workers write
    theirs to temporary folders, as every worker has to take part in saving).
    """

    LOG_NAME = "training_log.json"
    """Beside the checkpoints: one row per finished epoch (its logs and seconds), so the record
    of a resumed run holds the history and training time of all its epochs."""

    def __init__(self, directory, model: StructuredModel, max_to_keep: int = 3,
                 extra: Optional[Dict[str, Any]] = None, write_directory=None, every: int = 1,
                 last_epoch: Optional[int] = None):
        super().__init__()
        self.every, self.last_epoch = max(1, int(every)), last_epoch
        self._validation_seconds = 0.0
        self._validation_started = None
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
        self.directory = str(directory)
        self.write_directory = str(write_directory or directory)
        self.rows: list = []
        self._epoch_started = time.time()
        self.checkpoint = tf.train.Checkpoint(model=model, epochs_done=self.epoch,
                                              layer_random_states=random_states(model),
                                              **model.optimizers(), **(extra or {}))
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_directory,
                                                  max_to_keep=max_to_keep)

    def restore_latest(self) -> int:
        """Restores the newest checkpoint, if any; returns the number of epochs it had finished."""
        latest = tf.train.latest_checkpoint(self.directory)
        if latest:
            try:
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError) as e:
                first_line = str(e).strip().splitlines()[0][:300]
                raise CheckpointMismatch(
                    f"{latest}: this checkpoint does not match the model being trained (written for "
                    f"another method or configuration, or by an older tfsp): {first_line}. Resume "
                    f"with the configuration that wrote it, or train in a new --model_dir; a "
                    f"finished run's final weights can still be scored with --mode=evaluate") from None
            logging.info("resumed from %s (%d epochs done)", latest, int(self.epoch.numpy()))
        done = int(self.epoch.numpy())
        log = Path(self.directory) / self.LOG_NAME
        if done and log.exists():
            # Rows past the checkpoint (written just before a save that did not happen) are dropped.
            self.rows = [row for row in json.loads(log.read_text()) if row["epoch"] < done]
        return done

    def history(self) -> Dict[str, list]:
        """Keras-style history of every finished epoch, this process's and earlier ones'."""
        history: Dict[str, list] = {}
        for row in self.rows:
            for key, value in row["logs"].items():
                history.setdefault(key, []).append(value)
        return history

    def train_seconds(self) -> float:
        """Training time of every finished epoch (including validation), over all processes."""
        return sum(row["seconds"] for row in self.rows)

    def validation_seconds(self) -> float:
        """The part of train_seconds spent on periodic validation."""
        return sum(row.get("validation_seconds", 0.0) for row in self.rows)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.time()
        self._validation_seconds = 0.0

    def on_test_begin(self, logs=None):
        self._validation_started = time.time()

    def on_test_end(self, logs=None):
        if self._validation_started is not None:
            self._validation_seconds += time.time() - self._validation_started
            self._validation_started = None

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if all(math.isfinite(v) for v in logs.values()):
            self.rows.append({"epoch": int(epoch), "seconds": round(time.time() - self._epoch_started, 3),
                              "validation_seconds": round(self._validation_seconds, 3), "logs": logs})
            if (epoch + 1) % self.every and epoch + 1 != self.last_epoch and not self.model.stop_training:
                return  # rows past the last checkpoint are dropped on resume
            # The log first: a checkpoint never exists without its row.
            results.write_json(Path(self.write_directory) / self.LOG_NAME, self.rows)
            self.epoch.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best `monitor` and restores them at the end.

    Its state (best value, epoch, weights) lives in variables that `state` hands to the
    epoch checkpoint, so a resumed run selects among all epochs, not only its own.
    """

    def __init__(self, model: StructuredModel, monitor: str, mode: str = "max"):
        super().__init__()
        self.monitor, self.sign = monitor, (1.0 if mode == "max" else -1.0)
        self.best = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best_value")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self.weights = [tf.Variable(np.array(w), trainable=False) for w in model.get_weights()]
        self.state = tf.train.Checkpoint(value=self.best, epoch=self.epoch, weights=self.weights)

    @property
    def best_epoch(self) -> Optional[int]:
        return int(self.epoch.numpy()) or None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and math.isfinite(float(value)) and self.sign * float(value) > float(self.best.numpy()):
            self.best.assign(self.sign * float(value))
            self.epoch.assign(epoch + 1)
            for kept, current in zip(self.weights, self.model.get_weights()):
                kept.assign(current)

    def apply(self, model) -> None:
        """Sets the model to the best weights seen, if any epoch was scored."""
        if self.best_epoch is not None:
            model.set_weights([w.numpy() for w in self.weights])

    def on_train_end(self, logs=None):
        self.apply(self.model)


# ----- evaluation ----------------------------------------------------------------------------
def evaluate(model: StructuredModel, dataset, verbose=0) -> Dict[str, float]:
    values = model.evaluate(dataset, verbose=verbose, return_dict=True)
    return {k: float(v) for k, v in values.items()}


def step_curve(model: StructuredModel, dataset, steps: int, verbose=0) -> Dict[str, list]:
    """Each metric after every refinement step 0..steps (binarized predictions) over `dataset`
    (with a Keras progress bar over its batches at verbose=1, one line at 2)."""
    spec = model.spec

    @tf.function(reduce_retracing=True)
    def batch_sums(x, y_true):
        trajectory = model.infer(x, return_trajectory=True)["trajectory"]  # [T+1, B, ...]
        t, b = tf.shape(trajectory)[0], tf.shape(trajectory)[1]
        flat = oracles.binarize(tf.reshape(trajectory, tf.concat([[t * b], tf.shape(trajectory)[2:]], 0)),
                                spec.multiclass)
        truth = tf.repeat(y_true[tf.newaxis], t, axis=0)
        truth = tf.reshape(truth, tf.shape(flat))
        sums = {name: tf.reduce_sum(tf.reshape(fn(flat, truth), [t, b]), axis=1)
                for name, fn in spec.metrics.items()}
        for name, (numerator, denominator) in spec.ratio_metrics.items():
            sums[name] = tf.stack([tf.reduce_sum(tf.reshape(fn(flat, truth), [t, b]), axis=1)
                                   for fn in (numerator, denominator)])
        return sums, b

    with model.test_settings(refine=dataclasses.replace(model.test_refine, steps=steps, tolerance=0.0)):
        totals, count = None, 0
        batches = int(dataset.cardinality().numpy())
        progress = keras.utils.Progbar(batches if batches > 0 else None,
                                       verbose=1 if verbose == "auto" else int(verbose))
        for batch, (x, y_true) in enumerate(dataset):
            sums, b = batch_sums(x, tf.cast(y_true, tf.float32))
            sums = {k: v.numpy() for k, v in sums.items()}
            totals = sums if totals is None else {k: totals[k] + sums[k] for k in totals}
            count += int(b)
            progress.update(batch + 1)
    curve = {"step": list(range(steps + 1))}
    curve.update({name: [float(v) / count for v in totals[name]] for name in spec.metrics})
    for name in spec.ratio_metrics:  # pooled over the set, like RatioMetric
        numerator, denominator = totals[name]
        curve[name] = [100.0 * float(n) / float(d) if d else 0.0 for n, d in zip(numerator, denominator)]
    return curve


def metrics_from_step_curve(model: StructuredModel, curve: Dict[str, list]) -> Dict[str, float]:
    """The test metrics `evaluate` would return, read off a step curve of the model's own
    test-time refinement: the entry at the model's number of steps is the prediction (the
    curve may go further), step 0 the start (G(x) alone for methods with an inference
    network), so the curve's pass over the test set serves both."""
    metrics = {}
    for name, values in curve.items():
        if name == "step":
            continue
        metrics[name] = values[model.test_refine.steps]
        if "inference_net_" in model.prediction_kinds():
            metrics["inference_net_" + name] = values[0]
    return metrics


# ----- the run -------------------------------------------------------------------------------
FINAL_WEIGHTS = "final/model"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """default: one device (tf.distribute.get_strategy()); mirrored: all local devices
    (MirroredStrategy); multi_worker: every device of the workers listed in TF_CONFIG
    (MultiWorkerMirroredStrategy; create it before any other TensorFlow op runs)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                             '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                             '"task": {"type": "worker", "index": 0}}); see launch/multi_worker.sh')
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}; valid: {list(STRATEGIES)}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the results: always, except for the non-chief workers of
    multi-worker training (the chief is task "chief", else "worker" 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _setup(config: ExperimentConfig, strategy: Optional[tf.distribute.Strategy] = None):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = build_task_data(config.data, seed=config.seed)
    steps_per_epoch = int(data.train.cardinality().numpy())
    # Variables made in the scope (networks, optimizers, the sampling generator) are mirrored.
    with (strategy or tf.distribute.get_strategy()).scope(), dtype_policy(config.mixed_precision):
        model = build_method(config, data.spec, steps_per_epoch)
    return data, model


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


def write_checkpoint_atomically(checkpoint: tf.train.Checkpoint, prefix) -> None:
    """checkpoint.write under a temporary prefix, then renamed: the data file first and the
    .index last, so whoever finds <prefix>.index finds a complete checkpoint."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    temporary = prefix.parent / f".{prefix.name}.tmp-{os.getpid()}"
    checkpoint.write(str(temporary))
    files = sorted(prefix.parent.glob(temporary.name + ".*"), key=lambda f: f.suffix == ".index")
    for f in files:
        os.replace(f, str(prefix) + f.name[len(temporary.name):])


def _test_record(config: ExperimentConfig, data: TaskData, model: StructuredModel,
                 step_curve_steps: int, git_rev: str, verbose=0,
                 command: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Test metrics (final prediction and G alone) plus everything needed to reproduce them;
    `verbose` as in Keras (progress bars at 1, one line at 2); `command`: results.portable_command's
    record of the command (default: of sys.argv)."""
    eval_started = time.time()
    selected = crop_mode_selected = None
    if config.select_crop_mode and data.spec.crop_size and model.refines:
        crop_mode_selected = select_crop_mode(model, data.validation, verbose=verbose)
    selected = None
    if config.select_refine_steps and model.refines:
        selected = select_refine_steps(model, data.validation, verbose=verbose)
    curve = None
    if step_curve_steps:
        curve = step_curve(model, data.test, step_curve_steps, verbose=verbose)
    if data.full_resolution_eval is not None:
        # e.g. LFW: the working-resolution metrics and those at 250x250 from one prediction pass
        # (G-alone keys carry the prefix too).
        test_metrics = data.full_resolution_eval(model, verbose=verbose)
    elif curve is not None and step_curve_steps >= model.test_refine.steps and not model.test_refine.tolerance:
        test_metrics = metrics_from_step_curve(model, curve)  # each pass costs minutes on a CPU
    else:
        test_metrics = evaluate(model, data.test, verbose=verbose)
    logging.info("test metrics: %s", test_metrics)
    prefix = "inference_net_"
    record: Dict[str, Any] = {
        "task": config.task,
        "method": config.method,
        "metrics": {k: v for k, v in test_metrics.items() if not k.startswith(prefix)},
    }
    variant = type(model).variant(config.settings)
    if variant:
        record["variant"] = variant  # e.g. the README table keeps one row per primary loss
    if config.select_on:
        record["variant"] = (record.get("variant", "") + f" select {config.select_on}").strip()
    of_g = {k[len(prefix):]: v for k, v in test_metrics.items() if k.startswith(prefix)}
    if of_g:
        record["metrics_inference_net"] = of_g
    record.update({
        "seed": config.seed,
        "split": data.split,
        "sizes": data.sizes,
        "data": data.source,
        "config": config.to_dict(),
        "git_rev": git_rev,
        **(command or results.portable_command(sys.argv)),
        "eval_seconds": round(time.time() - eval_started, 2),
        "machine": results.machine(),
    })
    if config.compare_crop_modes and data.spec.crop_size and model.refines:
        record["metrics_by_crop_mode"] = crop_mode_metrics(model, data.test, verbose=verbose,
                                                           known={model.crop_mode: record["metrics"]})
    if curve is not None:
        record["step_curve"] = curve
    if selected is not None:
        record["refine_steps_selected"] = selected
    if crop_mode_selected is not None:
        record["crop_mode_selected"] = crop_mode_selected
    return record


def select_crop_mode(model: StructuredModel, validation, verbose=0) -> Dict[str, Any]:
    """Sets model.crop_mode to the crop mode (average | joint) with the best primary metric on
    `validation`; returns {"chosen", "configured", "validation"}."""
    if validation is None:
        raise ConfigError("select_crop_mode needs a validation split; this task's data has none")
    configured = model.crop_mode
    by_mode = {}
    for mode in crops.CROP_MODES:
        with model.test_settings(crop_mode=mode):
            by_mode[mode] = {k: v for k, v in evaluate(model, validation, verbose=verbose).items()
                             if not k.startswith("inference_net_")}
    metric = model.spec.primary_metric
    chosen = max(crops.CROP_MODES, key=lambda m: (by_mode[m][metric], m == configured))
    model.set_test_settings(crop_mode=chosen)
    logging.info("crop mode selected on validation: %s (%s)", chosen,
                 {m: round(v[metric], 2) for m, v in by_mode.items()})
    return {"chosen": chosen, "configured": configured, "validation": by_mode}


def select_refine_steps(model: StructuredModel, validation, verbose=0) -> Dict[str, Any]:
    """Sets model.test_refine.steps to the step count (0..steps; the fewest among ties) with the
    best primary metric on `validation`; returns {"chosen", "configured", "validation_curve"}."""
    if validation is None:
        raise ConfigError("select_refine_steps needs a validation split; this task's data has none")
    configured = model.test_refine.steps
    curve = step_curve(model, validation, configured, verbose=verbose)
    values = curve[model.spec.primary_metric]
    chosen = int(max(range(len(values)), key=lambda k: (values[k], -k)))
    model.set_test_settings(refine=dataclasses.replace(model.test_refine, steps=chosen))
    logging.info("refinement steps selected on validation: %d of %d (%s %.2f)", chosen, configured,
                 model.spec.primary_metric, values[chosen])
    return {"chosen": chosen, "configured": configured, "validation_curve": curve}


def crop_mode_metrics(model: StructuredModel, dataset, verbose=0,
                      known: Optional[Dict[str, Dict[str, float]]] = None) -> Dict[str, Dict[str, float]]:
    """Test metrics of refinement with each crop mode (crops refined alone and averaged, or
    the whole mask refined jointly), whichever the model was trained with; modes in `known`
    (e.g. the model's own, just evaluated) are not evaluated again."""
    by_mode = {mode: {k: v for k, v in metrics.items() if not k.endswith("_250")}
               for mode, metrics in (known or {}).items()}
    for mode in [m for m in crops.CROP_MODES if m not in by_mode]:
        with model.test_settings(crop_mode=mode):
            by_mode[mode] = {k: v for k, v in evaluate(model, dataset, verbose=verbose).items()
                             if not k.startswith("inference_net_")}
    return by_mode


def periodic_validation_data(config: ExperimentConfig, data: TaskData):
    """The validation pipeline fit scores every `validation_every` epochs: the whole validation
    split, or its first `validation_images` examples (a fixed subset, cached)."""
    if data.validation is None or not config.validation_images:
        return data.validation
    batch = config.data.eval_batch_size
    return data.validation.unbatch().take(config.validation_images).batch(batch).cache()


RESUME_MAY_CHANGE = LOCATION_FIELDS + ("select_refine_steps", "compare_crop_modes")
"""Fields a rerun into a model dir holding trained weights may set otherwise than the run that
trained them: where the data is, and what happens only after training (choosing the test-time
step count, scoring the other crop mode). test_refine and crop_mode are not among them: they
score the validation epochs that pick the kept weights and fill the history (re-test with other
values with --mode=evaluate). epochs and final_epochs_on_all_training_data may change too, as
long as the finished epochs keep their place in the schedule (see _check_schedule)."""
EVALUATE_MAY_CHANGE = RESUME_MAY_CHANGE + ("test_refine", "crop_mode")
"""Fields --mode=evaluate / probe / export may set otherwise than the run that trained the
weights: test-time settings, which is what re-evaluating is for."""
CONFIG_FILE = "config.json"


def check_model_dir_config(config: ExperimentConfig, model_dir, may_differ) -> Optional[Dict[str, Any]]:
    """Raises ConfigError naming the settings in which `config` differs from the one stored in
    model_dir/config.json (fields in `may_differ` aside), so weights trained with one setting are
    never recorded under another; returns the stored configuration (None if there is none)."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the configuration of the run in this model dir ({e})") from None
    differences = config_differences(stored, config, may_differ)
    if differences:
        raise ConfigError(
            f"{model_dir} holds a run trained with other settings: {describe_differences(differences, path.name)}. "
            f"Use the stored configuration ({assignments_for(differences)}) or another --model_dir")
    return stored


def has_trained_weights(model_dir) -> bool:
    """Whether model_dir holds weights a rerun would resume or evaluate (an epoch checkpoint or
    the final weights); a model dir whose run stopped before its first epoch has none."""
    return bool(tf.train.latest_checkpoint(str(Path(model_dir) / "checkpoints"))
                or Path(str(Path(model_dir) / FINAL_WEIGHTS) + ".index").exists())


def _check_schedule(stored: Optional[Dict[str, Any]], config: ExperimentConfig, model_dir, done: int) -> None:
    """A resumed run may train for more (or fewer) epochs than the run it continues, as long as
    every finished epoch keeps its place: within `epochs` (train split, model selection) or
    after it (final_epochs_on_all_training_data, train ∪ validation), and none beyond the end."""
    total = config.epochs + config.final_epochs_on_all_training_data
    if done > total:
        raise ConfigError(
            f"{model_dir} has {done} finished epochs, more than this run's epochs + "
            f"final_epochs_on_all_training_data = {total}: its record would understate the training. "
            f"Rerun with --epochs={done} or more, or use another --model_dir")
    trained_with = (stored or {}).get("epochs")
    if trained_with is not None and min(done, trained_with) != min(done, config.epochs):
        raise ConfigError(
            f"{model_dir} has {done} finished epochs, {min(done, trained_with)} of them on the train split "
            f"(epochs={trained_with}); with epochs={config.epochs} {min(done, config.epochs)} would be. "
            f"Use --epochs={trained_with} or another --model_dir")


def run(config: ExperimentConfig, model_dir: str, results_path: Optional[str] = None,
        step_curve_steps: int = 0, verbose: int = 1, strategy: str = "default",
        overwrite_results: bool = False, command: Optional[Dict[str, Any]] = None,
        export_dir: Optional[str] = None) -> Dict[str, Any]:
    """Trains and evaluates; writes TensorBoard logs, a checkpoint per epoch and the final
    (selected) weights under model_dir and, when results_path is given, the results JSON.
    With export_dir, then a SavedModel of the trained model as evaluated (tfsp.export), whose
    path is record["export"]: the model in memory, so the data is not loaded again.

    Nothing is written before the checks pass: valid values (config.validate), a results_path
    that holds no other run's record (results.check_replaceable; `overwrite_results` replaces
    it anyway), a model dir whose trained weights were made with this configuration (up to
    RESUME_MAY_CHANGE) and whose checkpoint matches the model. `command`: the record of the
    command line (results.portable_command; default: of sys.argv).

    strategy: see `make_strategy`. In multi-worker training only the chief writes into
    model_dir and results_path; the other workers write to temporary folders, deleted at
    the end (they still take part in every collective step, checkpoint saves included)."""
    validate(config)
    results.check_replaceable(results_path, config, model_dir, overwrite_results)
    distribution = make_strategy(strategy)  # first: multi-worker collectives need it before other ops
    chief = is_chief(distribution)
    own_dir = Path(model_dir) if chief else Path(tempfile.mkdtemp(prefix="tfsp-worker-"))
    try:
        record, model = _train_and_evaluate(config, Path(model_dir), own_dir, distribution, step_curve_steps,
                                            verbose, command)
    finally:
        if not chief:
            shutil.rmtree(own_dir, ignore_errors=True)
    record["strategy"] = {"name": strategy, "replicas": distribution.num_replicas_in_sync, "chief": chief}
    record["model_dir"] = results.portable_path(model_dir)[0]  # results.check_replaceable: the run it continues
    if results_path and chief:
        results.write_json(results_path, record)
        logging.info("wrote %s", results_path)
    if export_dir and chief:  # after the results, which a failed export then leaves written
        from tfsp import export

        record["export"] = str(export.export_saved_model(model, export_dir))
    return record


def _train_and_evaluate(config: ExperimentConfig, model_dir: Path, own_dir: Path,
                        strategy: tf.distribute.Strategy, step_curve_steps: int, verbose,
                        command: Optional[Dict[str, Any]] = None) -> Tuple[Dict[str, Any], StructuredModel]:
    """run() for one process: (record, trained model); own_dir is model_dir for the chief, a
    temporary folder otherwise."""
    started = time.time()
    git_rev = results.git_revision()  # of the code that starts running, not of HEAD when it ends
    stored = None
    if has_trained_weights(model_dir):
        stored = check_model_dir_config(config, model_dir, RESUME_MAY_CHANGE + (
            "epochs", "final_epochs_on_all_training_data"))
    data, model = _setup(config, strategy)
    steps_per_epoch = int(data.train.cardinality().numpy())
    if config.updates:
        config = dataclasses.replace(config, epochs=math.ceil(config.updates / steps_per_epoch))
        logging.info("budget of %d updates: %d epochs of %d steps", config.updates, config.epochs,
                     steps_per_epoch)
    validation = periodic_validation_data(config, data)

    monitor = "val_" + (config.select_on or data.spec.primary_metric)
    if config.select_on and config.select_on not in model.eval_trackers:
        raise ConfigError(f"select_on={config.select_on!r} is not a metric of {config.method}; "
                          f"valid: {sorted(model.eval_trackers)}")
    best = (BestWeights(model, monitor) if (config.select_best and data.validation is not None) else None)
    checkpoint = EpochCheckpoint(model_dir / "checkpoints", model,
                                 extra={"best_weights": best.state} if best is not None else None,
                                 write_directory=None if own_dir == model_dir else own_dir / "checkpoints",
                                 every=config.checkpoint_every,
                                 last_epoch=config.epochs + config.final_epochs_on_all_training_data)
    initial_epoch = checkpoint.restore_latest()
    _check_schedule(stored, config, model_dir, initial_epoch)
    # Only now, with the configuration and the checkpoint found to fit, is anything written.
    own_dir.mkdir(parents=True, exist_ok=True)
    results.write_json(own_dir / CONFIG_FILE, config.to_dict())
    nan_guard = StopOnNonFinite()
    # BestWeights before the checkpoint, so each epoch's checkpoint holds that epoch's selection.
    callbacks = [nan_guard] + ([best] if best is not None else []) + [
        checkpoint, keras.callbacks.TensorBoard(log_dir=str(own_dir / "logs"), update_freq="epoch")]
    if data.spec.crop_size and data.validation is not None:
        images, truths = next(iter(data.validation.unbatch().batch(4)))
        callbacks.append(summaries.RefinementImages(own_dir / "logs", images.numpy(), truths.numpy(),
                                                    every=max(1, config.epochs // 20)))
    callbacks += summaries.monitoring_callbacks(config, data, own_dir / "logs")
    callbacks = model.training_callbacks(steps_per_epoch) + callbacks

    def training_data(from_epoch, stream, finite):
        """Epoch-keyed stream where the loader has one (exact resumes), else the finite pipeline."""
        if stream is not None:
            return dict(x=stream(from_epoch), steps_per_epoch=steps_per_epoch)
        logging.warning("the %s loader has no epoch-keyed pipeline: a resumed run sees other batches "
                        "than an uninterrupted one", config.data.loader)
        return dict(x=finite)

    train_started = time.time()
    epochs_run = 0
    if initial_epoch < config.epochs:
        with model.test_settings(crop_grid=config.validation_crop_grid or None):
            history = model.fit(**training_data(initial_epoch, data.train_from_epoch, data.train),
                                validation_data=validation, validation_freq=config.validation_every,
                                epochs=config.epochs, shuffle=False, initial_epoch=initial_epoch,
                                callbacks=callbacks, verbose=verbose)
        epochs_run = len(history.epoch)
    elif best is not None and (initial_epoch == config.epochs or not config.final_epochs_on_all_training_data):
        best.apply(model)  # what the uninterrupted run's first fit ended with
    if config.final_epochs_on_all_training_data and not nan_guard.failure:
        # The validation rows join training now, so model selection stops here.
        callbacks = [c for c in callbacks if c is not best]
        first = max(initial_epoch, config.epochs)
        more = model.fit(**training_data(first, data.train_and_validation_from_epoch, data.train_and_validation),
                         epochs=config.epochs + config.final_epochs_on_all_training_data,
                         shuffle=False, initial_epoch=first, callbacks=callbacks, verbose=verbose)
        epochs_run += len(more.epoch)
        best = None
    train_seconds_this_process = time.time() - train_started
    if nan_guard.failure:
        raise TrainingDiverged(
            f"training stopped: a loss became non-finite at {nan_guard.failure}. The last good "
            f"checkpoint is intact: {checkpoint.manager.latest_checkpoint or '(none yet)'}. "
            "Lower the learning rate or the refinement step size and rerun with another --model_dir "
            "(resuming this one with other settings would mix them in one record).")
    write_checkpoint_atomically(tf.train.Checkpoint(model=model), own_dir / FINAL_WEIGHTS)

    record = _test_record(config, data, model, step_curve_steps, git_rev, verbose=verbose, command=command)
    # Every epoch of the run, also those of earlier (interrupted) processes; run directories
    # from before the epoch log have no rows for their earlier epochs.
    train_seconds = checkpoint.train_seconds() if checkpoint.rows else train_seconds_this_process
    record.update({
        "train_seconds": round(train_seconds, 2),
        "train_seconds_this_process": round(train_seconds_this_process, 2),
        "epochs_run": epochs_run,
        "initial_epoch": initial_epoch,
        "steps_per_epoch": steps_per_epoch,
        # Optimizer steps of the value network (DVN) or D (methods with two optimizers).
        "updates": max(int(o.iterations.numpy()) for o in model.optimizers().values()),
        "validation_seconds": round(checkpoint.validation_seconds(), 2),
        "best_epoch": best.best_epoch if best is not None else None,
        "history": checkpoint.history(),
        "wall_seconds": round(time.time() - started, 2),
    })
    return record, model


def restore(config: ExperimentConfig, model_dir: str):
    """(data, model) with the weights a finished run kept (falls back to the newest epoch checkpoint).
    `config` must be the one that trained them, up to test-time settings (EVALUATE_MAY_CHANGE)."""
    validate(config)
    check_model_dir_config(config, model_dir, EVALUATE_MAY_CHANGE)
    data, model = _setup(config)
    final = Path(model_dir) / FINAL_WEIGHTS
    if Path(str(final) + ".index").exists():
        tf.train.Checkpoint(model=model).read(str(final)).expect_partial()
    else:
        epoch_checkpoint = EpochCheckpoint(Path(model_dir) / "checkpoints", model)
        if not epoch_checkpoint.restore_latest():
            raise FileNotFoundError(f"no trained weights under {model_dir}: neither {final}.index "
                                    f"nor checkpoints/ckpt-*.index")
    return data, model


def _reference_outputs(spec: TaskSpec, y_true, prediction, rng: tf.random.Generator) -> Dict[str, tf.Tensor]:
    """Outputs whose oracle value is known to differ a lot, each projected onto the feasible set
    ("zeros" is the uniform distribution and "ones" is left out on the simplex)."""
    outputs = {"ground_truth": y_true, "prediction": prediction, "zeros": tf.zeros_like(y_true),
               "ones": tf.ones_like(y_true), "noise": rng.uniform(tf.shape(y_true)),
               "other_example_ground_truth": tf.roll(y_true, 1, axis=0)}
    if y_true.shape.rank == 4:  # a segmentation mask moved by a sixth of its width
        outputs["shifted_ground_truth"] = tf.roll(y_true, max(1, y_true.shape[2] // 6), axis=2)
    if spec.multiclass:
        del outputs["ones"]
    return {kind: project(tf.cast(y, tf.float32), spec.projection) for kind, y in outputs.items()}


def probe_value_network(model: StructuredModel, dataset, seed: int = 0) -> Dict[str, Dict[str, float]]:
    """{kind: {"value", "oracle"}}: the value network's mean value and the task oracle's mean
    over `dataset` for reference outputs (ground truth, the model's prediction, zeros, ones,
    noise, the ground truth shifted or of another example). A value network that has learned
    its oracle ranks them as the oracle does; one that gives them all about the same value
    has not (what DVN's value net on horses does). Segmentation images larger than the
    training crops are probed on their centre crop, the input size the value net was trained on."""
    if not model.refines:
        raise ConfigError(f"method {model.name!r} has no value network to probe")
    spec = model.spec
    rng = tf.random.Generator.from_seed(seed)
    sums: Dict[str, Dict[str, float]] = {}
    count = 0
    for x, y_true in dataset:
        y_true = tf.cast(y_true, tf.float32)
        if spec.crop_size and x.shape[1] != spec.crop_size:
            start = (x.shape[1] - spec.crop_size) // 2
            window = slice(start, start + spec.crop_size)
            x, y_true = x[:, window, window], y_true[:, window, window]
        value_fn = model.value_of(model.prepare_inputs(x))
        outputs = _reference_outputs(spec, y_true, model.infer(x)["y"], rng)
        for kind, y in outputs.items():
            entry = sums.setdefault(kind, {"value": 0.0, "oracle": 0.0})
            entry["value"] += float(tf.reduce_sum(value_fn(y)))
            entry["oracle"] += float(tf.reduce_sum(per_example_mean(spec.oracle_fn(y, y_true))))
        count += int(tf.shape(y_true)[0])
    return {kind: {name: total / count for name, total in entry.items()} for kind, entry in sums.items()}


def probe_saved(config: ExperimentConfig, model_dir: str, results_path: Optional[str] = None,
                overwrite_results: bool = False, command: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """--mode=probe: probe_value_network on the validation split (the test split if there is
    none) with the weights a run left in model_dir; written to results_path if given
    (overwrite_results and command as in `run`)."""
    results.check_replaceable(results_path, config, overwrite=overwrite_results)
    git_rev = results.git_revision()
    data, model = restore(config, model_dir)
    split = "validation" if data.validation is not None else "test"
    record = {"task": config.task, "method": config.method,
              "probe": probe_value_network(model, getattr(data, split), seed=config.seed),
              "split": split, "probed_from": str(model_dir), "seed": config.seed, "config": config.to_dict(),
              "git_rev": git_rev, **(command or results.portable_command(sys.argv)), "machine": results.machine()}
    if results_path:
        results.write_json(results_path, record)
    return record


def evaluate_saved(config: ExperimentConfig, model_dir: str, results_path: Optional[str] = None,
                   step_curve_steps: int = 0, verbose=0, overwrite_results: bool = False,
                   command: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Re-evaluates trained weights, e.g. with other refinement settings (--mode=evaluate);
    overwrite_results and command as in `run`."""
    results.check_replaceable(results_path, config, overwrite=overwrite_results)
    git_rev = results.git_revision()
    data, model = restore(config, model_dir)
    record = _test_record(config, data, model, step_curve_steps, git_rev, verbose=verbose, command=command)
    record["evaluated_from"] = str(model_dir)
    if results_path:
        results.write_json(results_path, record)
    return record
