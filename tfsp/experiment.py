"""One experiment end to end: data, method, fit with callbacks, evaluation, results JSON.

The split follows the TensorFlow Model Garden: the task (data + spec) is built from
`config.data`, the method (a `keras.Model` with its own `train_step`) from the rest;
`run` wires them to `fit`, TensorBoard, checkpoints and the results file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfsp import oracles, results, summaries
from tfsp.config import ExperimentConfig, NetworkConfig, OptimizerConfig
from tfsp.datasets import TaskData, build_task_data
from tfsp.methods import DVN, LDRSP, SPEN, AdversarialConfig, FeedForward, ImplicitEnergy, InfNet, StructuredModel
from tfsp.networks import FCN, ConvValueNet, MultiLabelEnergy, MultiLabelMLP, PatchDiscriminator
from tfsp.refine import RefineConfig
from tfsp.spec import TaskSpec

METHODS = ("feedforward", "dvn", "ldrsp", "spen", "infnet", "implicit")


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
                            name="value_net")
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


def _refine_config(settings, spec: TaskSpec) -> RefineConfig:
    return RefineConfig(steps=settings.steps, step_size=settings.step_size,
                        normalize=settings.normalize, projection=spec.projection,
                        tolerance=settings.tolerance)


def build_method(config: ExperimentConfig, spec: TaskSpec, steps_per_epoch: int) -> StructuredModel:
    """The method named by config.method, compiled with its optimizer(s)."""
    if config.oracle:
        spec = dataclasses.replace(spec, oracle=config.oracle)
        spec.oracle_fn  # noqa: B018 -- fails early, naming the valid oracles
    common = dict(spec=spec, seed=config.seed, crop_mode=config.crop_mode, name=config.method)
    test_refine = _refine_config(config.test_refine, spec)
    adversarial = AdversarialConfig(**dataclasses.asdict(config.adversarial))
    algorithm = config.algorithm or config.method
    if algorithm == "feedforward":
        model = FeedForward(inference_net=build_inference_network(spec, config.inference_net), **common)
        model.compile(optimizer=build_optimizer(config.optimizer, steps_per_epoch),
                      jit_compile=config.jit_compile)
    elif algorithm == "dvn":
        model = DVN(value_net=build_value_network(spec, config.value_net), test_refine=test_refine,
                    train_refine=_refine_config(config.train_refine, spec), adversarial=adversarial,
                    sample_weights=config.sample_weights, **common)
        model.compile(optimizer=build_optimizer(config.optimizer, steps_per_epoch),
                      jit_compile=config.jit_compile)
    elif algorithm == "ldrsp":
        model = LDRSP(inference_net=build_inference_network(spec, config.inference_net),
                      value_net=build_value_network(spec, config.value_net), test_refine=test_refine,
                      train_refine=_refine_config(config.train_refine, spec), adversarial=adversarial,
                      generator_adversarial_weight=config.generator_adversarial_weight,
                      inference_weight=config.inference_weight,
                      adversarial_weight=config.adversarial_weight, **common)
        model.compile(d_optimizer=build_optimizer(config.d_optimizer, steps_per_epoch),
                      g_optimizer=build_optimizer(config.g_optimizer, steps_per_epoch),
                      jit_compile=config.jit_compile)
    elif algorithm == "spen":
        model = SPEN(value_net=build_value_network(spec, config.value_net), test_refine=test_refine,
                     train_refine=_refine_config(config.train_refine, spec),
                     pretrain_steps=int(round(config.pretrain_epochs * steps_per_epoch)), **common)
        model.compile(optimizer=build_optimizer(config.optimizer, steps_per_epoch),
                      jit_compile=config.jit_compile)
    elif algorithm == "infnet":
        model = InfNet(inference_net=build_inference_network(spec, config.inference_net),
                       cost_augmented_net=build_inference_network(
                           spec, config.inference_net, name="cost_augmented_net"),
                       value_net=build_value_network(spec, config.value_net), test_refine=test_refine,
                       test_weight=config.infnet_test_weight,
                       cross_entropy_weight=config.infnet_cross_entropy_weight, **common)
        model.compile(d_optimizer=build_optimizer(config.d_optimizer, steps_per_epoch),
                      g_optimizer=build_optimizer(config.g_optimizer, steps_per_epoch),
                      jit_compile=config.jit_compile)
    elif algorithm == "implicit":
        model = ImplicitEnergy(inference_net=build_inference_network(spec, config.inference_net),
                               value_net=build_value_network(spec, config.value_net), test_refine=test_refine,
                               primary_loss=config.primary_loss,
                               pretrain_steps=int(round(config.pretrain_epochs * steps_per_epoch)),
                               **dataclasses.asdict(config.implicit), **common)
        model.compile(d_optimizer=build_optimizer(config.d_optimizer, steps_per_epoch),
                      g_optimizer=build_optimizer(config.g_optimizer, steps_per_epoch),
                      jit_compile=config.jit_compile)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r} for method {config.method!r}; "
                         f"valid: {list(METHODS)}")
    build(model, spec)
    return model


def build(model: StructuredModel, spec: TaskSpec) -> None:
    """Creates every variable (networks and optimizers) so checkpoints can be restored before fit."""
    shape = spec.input_shape
    if spec.crop_size:
        shape = (spec.crop_size, spec.crop_size, *shape[2:])
    model.build_networks(tf.zeros((2, *shape)))
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


class EpochCheckpoint(keras.callbacks.Callback):
    """A tf.train.CheckpointManager save at every epoch end whose logs are all finite.

    The checkpoint holds the networks, the optimizers (their slots and step
    counters) and the number of finished epochs, so a rerun of the same command
    resumes at the last epoch boundary.
    """

    def __init__(self, directory, model: StructuredModel, max_to_keep: int = 3):
        super().__init__()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
        self.checkpoint = tf.train.Checkpoint(model=model, epochs_done=self.epoch, **model.optimizers())
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=max_to_keep)

    def restore_latest(self) -> int:
        """Restores the newest checkpoint, if any; returns the number of epochs it had finished."""
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            logging.info("resumed from %s (%d epochs done)", self.manager.latest_checkpoint,
                         int(self.epoch.numpy()))
        return int(self.epoch.numpy())

    def on_epoch_end(self, epoch, logs=None):
        if all(math.isfinite(float(v)) for v in (logs or {}).values()):
            self.epoch.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best `monitor` and restores them at the end."""

    def __init__(self, monitor: str, mode: str = "max"):
        super().__init__()
        self.monitor, self.sign = monitor, (1.0 if mode == "max" else -1.0)
        self.best, self.best_epoch, self.weights = -math.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and math.isfinite(float(value)) and self.sign * float(value) > self.best:
            self.best, self.best_epoch = self.sign * float(value), epoch + 1
            self.weights = [np.array(w) for w in self.model.get_weights()]

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


# ----- evaluation ----------------------------------------------------------------------------
def evaluate(model: StructuredModel, dataset) -> Dict[str, float]:
    values = model.evaluate(dataset, verbose=0, return_dict=True)
    return {k: float(v) for k, v in values.items()}


def step_curve(model: StructuredModel, dataset, steps: int) -> Dict[str, list]:
    """Each metric after every refinement step 0..steps (binarized predictions) over `dataset`."""
    original = model.test_refine
    model.test_refine = dataclasses.replace(original, steps=steps, tolerance=0.0)
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
        return sums, b

    try:
        totals, count = None, 0
        for x, y_true in dataset:
            sums, b = batch_sums(x, tf.cast(y_true, tf.float32))
            sums = {k: v.numpy() for k, v in sums.items()}
            totals = sums if totals is None else {k: totals[k] + sums[k] for k in totals}
            count += int(b)
    finally:
        model.test_refine = original
    curve = {"step": list(range(steps + 1))}
    curve.update({name: [float(v) / count for v in values] for name, values in totals.items()})
    return curve


# ----- the run -------------------------------------------------------------------------------
FINAL_WEIGHTS = "final/model"


def _setup(config: ExperimentConfig):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = build_task_data(config.data, seed=config.seed)
    steps_per_epoch = int(data.train.cardinality().numpy())
    return data, build_method(config, data.spec, steps_per_epoch)


def _test_record(config: ExperimentConfig, data: TaskData, model: StructuredModel,
                 step_curve_steps: int, git_rev: str) -> Dict[str, Any]:
    """Test metrics (final prediction and G alone) plus everything needed to reproduce them."""
    eval_started = time.time()
    test_metrics = evaluate(model, data.test)
    if data.full_resolution_eval is not None:  # e.g. LFW at 250x250; G-alone keys carry the prefix too
        test_metrics.update(data.full_resolution_eval(model))
    logging.info("test metrics: %s", test_metrics)
    prefix = "inference_net_"
    record: Dict[str, Any] = {
        "task": config.task,
        "method": config.method,
        "metrics": {k: v for k, v in test_metrics.items() if not k.startswith(prefix)},
    }
    if (config.algorithm or config.method) == "implicit":
        record["variant"] = config.primary_loss  # the README table keeps one row per primary loss
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
        "command": results.command_line(sys.argv),
        "eval_seconds": round(time.time() - eval_started, 2),
        "machine": {"cpus": os.cpu_count(), "load_average_1_5_15min": os.getloadavg(),
                    "tensorflow": tf.__version__, "keras": keras.__version__},
    })
    if step_curve_steps:
        record["step_curve"] = step_curve(model, data.test, step_curve_steps)
    return record


def run(config: ExperimentConfig, model_dir: str, results_path: Optional[str] = None,
        step_curve_steps: int = 0, verbose: int = 1) -> Dict[str, Any]:
    """Trains and evaluates; writes TensorBoard logs, a checkpoint per epoch and the final
    (selected) weights under model_dir and, when results_path is given, the results JSON."""
    started = time.time()
    git_rev = results.git_revision()  # of the code that starts running, not of HEAD when it ends
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    results.write_json(model_dir / "config.json", config.to_dict())
    data, model = _setup(config)

    checkpoint = EpochCheckpoint(model_dir / "checkpoints", model)
    initial_epoch = checkpoint.restore_latest()
    nan_guard = StopOnNonFinite()
    monitor = "val_" + (config.select_on or data.spec.primary_metric)
    if config.select_on and config.select_on not in model.eval_trackers:
        raise ValueError(f"select_on={config.select_on!r} is not a metric of {config.method}; "
                         f"valid: {sorted(model.eval_trackers)}")
    best = BestWeights(monitor) if (config.select_best and data.validation is not None) else None
    callbacks = [nan_guard, checkpoint,
                 keras.callbacks.TensorBoard(log_dir=str(model_dir / "logs"), update_freq="epoch")]
    if best is not None:
        callbacks.append(best)
    if data.spec.crop_size and data.validation is not None:
        images, truths = next(iter(data.validation.unbatch().batch(4)))
        callbacks.append(summaries.RefinementImages(model_dir / "logs", images.numpy(), truths.numpy(),
                                                    every=max(1, config.epochs // 20)))

    train_started = time.time()
    history = model.fit(data.train, validation_data=data.validation, validation_freq=config.validation_every,
                        epochs=config.epochs, shuffle=False,
                        initial_epoch=min(initial_epoch, config.epochs), callbacks=callbacks, verbose=verbose)
    history_log = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    epochs_run = len(history.epoch)
    if config.final_epochs_on_all_training_data and not nan_guard.failure:
        # The validation rows join training now, so model selection stops here.
        callbacks = [c for c in callbacks if c is not best]
        more = model.fit(data.train_and_validation, epochs=config.epochs + config.final_epochs_on_all_training_data,
                         shuffle=False, initial_epoch=max(initial_epoch, config.epochs), callbacks=callbacks,
                         verbose=verbose)
        for k, vs in more.history.items():
            history_log.setdefault(k, []).extend(float(v) for v in vs)
        epochs_run += len(more.epoch)
        best = None
    train_seconds = time.time() - train_started
    if nan_guard.failure:
        raise TrainingDiverged(
            f"training stopped: a loss became non-finite at {nan_guard.failure}. The last good "
            f"checkpoint is intact: {checkpoint.manager.latest_checkpoint or '(none yet)'}. "
            "Lower the learning rate or the refinement step size and rerun.")
    tf.train.Checkpoint(model=model).write(str(model_dir / FINAL_WEIGHTS))

    record = _test_record(config, data, model, step_curve_steps, git_rev)
    record.update({
        "train_seconds": round(train_seconds, 2),
        "epochs_run": epochs_run,
        "initial_epoch": initial_epoch,
        "best_epoch": best.best_epoch if best is not None else None,
        "history": history_log,
        "wall_seconds": round(time.time() - started, 2),
    })
    if results_path:
        results.write_json(results_path, record)
        logging.info("wrote %s", results_path)
    return record


def restore(config: ExperimentConfig, model_dir: str):
    """(data, model) with the weights a finished run kept (falls back to the newest epoch checkpoint)."""
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


def evaluate_saved(config: ExperimentConfig, model_dir: str, results_path: Optional[str] = None,
                   step_curve_steps: int = 0) -> Dict[str, Any]:
    """Re-evaluates trained weights, e.g. with other refinement settings (--mode=evaluate)."""
    git_rev = results.git_revision()
    data, model = restore(config, model_dir)
    record = _test_record(config, data, model, step_curve_steps, git_rev)
    record["evaluated_from"] = str(model_dir)
    if results_path:
        results.write_json(results_path, record)
    return record
