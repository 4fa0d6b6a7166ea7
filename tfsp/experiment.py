"""One experiment end to end, as jobs: `run` (set up, train with its callbacks, evaluate, write
the record), `restore` (a finished run's weights) and `evaluate_saved` (--mode=evaluate).

The split follows the TensorFlow Model Garden: the task (data + spec, tfsp.datasets) is built
from `config.data`, the method (a registered `keras.Model` with its own `train_step`,
tfsp.build) from the rest; the callbacks are tfsp.callbacks, the test pass tfsp.evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf
from absl import logging

from tfsp import results, summaries
from tfsp.build import build_method, dtype_policy
from tfsp.callbacks import BestWeights, CheckpointMismatch, EpochCheckpoint, StopOnNonFinite, write_checkpoint_atomically
from tfsp.config import ConfigError, ExperimentConfig, validate
from tfsp.stored_config import LOCATION_FIELDS, assignments_for, config_differences, describe_differences
from tfsp.datasets import build_task_data
from tfsp.evaluation import check_test_selection, periodic_validation_data, test_record
from tfsp.methods import StructuredModel, registry

__all__ = ["CheckpointMismatch", "TrainingDiverged", "run", "restore", "evaluate_saved", "make_strategy",
           "check_model_dir_config", "build_method"]

STRATEGIES = ("default", "mirrored", "multi_worker")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message says where and which checkpoint is intact."""


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


def training_folds(config: ExperimentConfig) -> int:
    """How many folds the method trains on held out from each other (0: none; the training
    labels then carry each example's fold, tfsp.datasets.with_fold_channel)."""
    try:
        method = registry.get(config.algorithm or config.method)
    except KeyError:
        return 0  # build_method names the valid methods
    return method.model_class.training_folds(config.settings)


def _setup(config: ExperimentConfig, strategy: Optional[tf.distribute.Strategy] = None):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = build_task_data(config.data, seed=config.seed, training_folds=training_folds(config))
    steps_per_epoch = int(data.train.cardinality().numpy())
    # Variables made in the scope (networks, optimizers, the sampling generator) are mirrored.
    with (strategy or tf.distribute.get_strategy()).scope(), dtype_policy(config.mixed_precision):
        model = build_method(config, data.spec, steps_per_epoch)
    model.set_test_settings(threshold=config.prediction_threshold)
    return data, model


RESUME_MAY_CHANGE = LOCATION_FIELDS + ("select_refine_steps", "select_refine_steps_up_to",
                                       "select_crop_mode", "select_mirror", "select_threshold",
                                       "compare_crop_modes")
"""Fields a rerun into a model dir holding trained weights may set otherwise than the run that
trained them: where the data is, and what happens only after training (choosing the test-time
step count, crop mode, mirror or threshold on validation, scoring the other crop mode). test_refine,
crop_mode and prediction_threshold are not among them: they score the validation epochs that
pick the kept weights and fill the history (re-test with other values with --mode=evaluate). epochs and final_epochs_on_all_training_data may change too, as
long as the finished epochs keep their place in the schedule (see _check_schedule)."""
EVALUATE_MAY_CHANGE = RESUME_MAY_CHANGE + ("test_refine", "crop_mode", "data.crop_grid", "prediction_threshold")
"""Fields --mode=evaluate / probe / export may set otherwise than the run that trained the
weights: test-time settings (the refinement, how crops are combined, how many crops cover a
test image, the threshold that binarizes outputs), which is what re-evaluating is for."""
CONFIG_FILE = "config.json"
CHOSEN_TEST_SETTINGS_FILE = "chosen_test_settings.json"
"""In a model dir: the test-time settings the last test pass chose on validation (refinement
steps, crop mode, mirror, threshold; select_*), which an export of those weights then serves."""
CHOSEN_TEST_SETTINGS = {"refine_steps": ("refine_steps_selected", "test_refine.steps"),
                        "crop_mode": ("crop_mode_selected", "crop_mode"),
                        "mirror": ("mirror_selected", "test_refine.mirror"),
                        "threshold": ("threshold_selected", "prediction_threshold")}
"""Each key of CHOSEN_TEST_SETTINGS_FILE: (the test record's field of the choice, the setting it sets)."""


def write_chosen_test_settings(model_dir, record: Dict[str, Any]) -> None:
    """Keeps the choices `record` (a test_record) made on validation beside the weights, or
    removes an earlier pass's file when this one chose nothing."""
    chosen = {key: record[field]["chosen"] for key, (field, _) in CHOSEN_TEST_SETTINGS.items() if field in record}
    path = Path(model_dir) / CHOSEN_TEST_SETTINGS_FILE
    if chosen:
        results.write_json(path, chosen)
    elif path.exists():
        path.unlink()


def apply_chosen_test_settings(model: StructuredModel, model_dir,
                               config: Optional[ExperimentConfig] = None) -> Dict[str, Any]:
    """Gives `model` the test-time settings chosen on validation for the weights in model_dir
    (write_chosen_test_settings); returns them ({} if none were chosen). With `config`, a
    setting it gives other than the stored training configuration's (e.g. --refine_steps at
    export) is the user's choice and wins over the one chosen on validation."""
    path = Path(model_dir) / CHOSEN_TEST_SETTINGS_FILE
    if not path.exists():
        return {}
    chosen = results.read_json(path)
    unknown = set(chosen) - set(CHOSEN_TEST_SETTINGS)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    if config is not None:
        overridden = {name for name, _, _ in config_differences(
            results.read_json(Path(model_dir) / CONFIG_FILE), config)}
        chosen = {k: v for k, v in chosen.items() if CHOSEN_TEST_SETTINGS[k][1] not in overridden}
    refine = model.test_refine
    if "refine_steps" in chosen:
        refine = dataclasses.replace(refine, steps=int(chosen["refine_steps"]))
    if "mirror" in chosen:
        refine = dataclasses.replace(refine, mirror=bool(chosen["mirror"]))
    model.set_test_settings(refine=refine, crop_mode=chosen.get("crop_mode"), threshold=chosen.get("threshold"))
    return chosen


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


def networks_of(model) -> List[str]:
    """The names of a method's networks (its attributes named *_net that are Keras layers):
    what init_checkpoint can take from another run."""
    return sorted(name for name, value in vars(model).items()
                  if name.endswith("_net") and isinstance(value, keras.layers.Layer))


def initialize_from(model, model_dir: str, networks: Sequence[str] = (), seed: int = 0) -> List[str]:
    """Sets `networks` of `model` (all of networks_of(model) if empty) to the weights another
    run kept in `model_dir` (restored with the configuration stored there, so a checkpoint of
    any layout loads); returns the names set. A network that run lacks or holds with other
    shapes is an error naming it; an averaged value network (value_average) starts equal to the
    value network. Re-seeds with `seed` afterwards (restoring the source run seeded its own)."""
    own = networks_of(model)
    names = list(networks) or own
    unknown = [name for name in names if name not in own]
    if unknown:
        raise ConfigError(f"init_networks: {model.name} has no network {unknown}; its networks: {own}")
    if not (Path(model_dir) / CONFIG_FILE).exists():
        raise ConfigError(f"init_checkpoint={model_dir}: not a model dir of a tfsp run "
                          f"({Path(model_dir) / CONFIG_FILE} not found)")
    _, _, source = restore_stored(model_dir)
    shapes = lambda net: [tuple(w.shape) for w in net.weights]  # noqa: E731
    for name in names:
        theirs = getattr(source, name, None)
        mine = getattr(model, name)
        if theirs is None or shapes(theirs) != shapes(mine):
            found = "none" if theirs is None else f"shapes {shapes(theirs)}"
            raise ConfigError(f"init_checkpoint {model_dir} has no {name} of this shape to start from "
                              f"(this run's: {shapes(mine)}; there: {found})")
        mine.set_weights(theirs.get_weights())
    if "value_net" in names and getattr(model, "value_net_average", None) is not None:
        model.value_net_average.set_weights(model.value_net.get_weights())
    keras.utils.set_random_seed(seed)
    logging.info("initialized %s from the weights kept in %s", ", ".join(names), model_dir)
    return names


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
    check_test_selection(config, data.spec)
    validation = periodic_validation_data(config, data)

    selected_on = [m.strip() for m in config.select_on.split(",")] if config.select_on else [
        data.spec.primary_metric]
    for metric in selected_on:
        if config.select_on and metric not in model.eval_trackers:
            raise ConfigError(f"select_on={config.select_on!r}: {metric!r} is not a metric of {config.method}; "
                              f"valid: {sorted(model.eval_trackers)}")
    monitor = ["val_" + m for m in selected_on]
    if config.early_stopping_validations and not (config.select_best and data.validation is not None):
        raise ConfigError(f"early_stopping_validations={config.early_stopping_validations} needs select_best "
                          "and a validation split (set early_stopping_validations=0 to train every epoch)")
    if config.early_stopping_validations and config.final_epochs_on_all_training_data:
        raise ConfigError(f"early_stopping_validations={config.early_stopping_validations} and "
                          "final_epochs_on_all_training_data exclude each other: the epochs on train + "
                          "validation follow a fixed schedule (set early_stopping_validations=0)")
    best = (BestWeights(model, monitor, patience_epochs=config.early_stopping_validations * config.validation_every)
            if (config.select_best and data.validation is not None) else None)
    checkpoint = EpochCheckpoint(model_dir / "checkpoints", model,
                                 extra={"best_weights": best.state} if best is not None else None,
                                 write_directory=None if own_dir == model_dir else own_dir / "checkpoints",
                                 every=config.checkpoint_every,
                                 last_epoch=config.epochs + config.final_epochs_on_all_training_data)
    initial_epoch = checkpoint.restore_latest()
    _check_schedule(stored, config, model_dir, initial_epoch)
    if config.init_checkpoint and not initial_epoch:
        initialize_from(model, config.init_checkpoint, config.init_networks, seed=config.seed)
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
    stopped_before = best is not None and best.patience_exhausted(initial_epoch)
    if initial_epoch < config.epochs and not stopped_before:
        with model.test_settings(crop_grid=config.validation_crop_grid or None):
            history = model.fit(**training_data(initial_epoch, data.train_from_epoch, data.train),
                                validation_data=validation, validation_freq=config.validation_every,
                                epochs=config.epochs, shuffle=False, initial_epoch=initial_epoch,
                                callbacks=callbacks, verbose=verbose)
        epochs_run = len(history.epoch)
    elif best is not None and (initial_epoch == config.epochs or stopped_before
                               or not config.final_epochs_on_all_training_data):
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

    record = test_record(config, data, model, step_curve_steps, git_rev, verbose=verbose, command=command)
    write_chosen_test_settings(own_dir, record)
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
        # The last epoch trained when early stopping ended the run before its budget.
        "early_stopped_at_epoch": (initial_epoch + epochs_run if best is not None and initial_epoch + epochs_run
                                   < config.epochs and best.patience_exhausted(initial_epoch + epochs_run) else None),
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


def restore_stored(model_dir: str, data_dir: Optional[str] = None):
    """(config, data, model) of a finished run, with the configuration its model dir stores
    (config.json, of any tfsp version); `data_dir`, if given, replaces the stored data folder."""
    from tfsp.stored_config import config_from_dict

    path = Path(model_dir) / CONFIG_FILE
    config = config_from_dict(json.loads(path.read_text()), str(path))
    if data_dir:
        config.data.data_dir = data_dir
    return (config, *restore(config, model_dir))


def evaluate_saved(config: ExperimentConfig, model_dir: str, results_path: Optional[str] = None,
                   step_curve_steps: int = 0, verbose=0, overwrite_results: bool = False,
                   command: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Re-evaluates trained weights, e.g. with other refinement settings (--mode=evaluate);
    overwrite_results and command as in `run`."""
    results.check_replaceable(results_path, config, overwrite=overwrite_results)
    git_rev = results.git_revision()
    data, model = restore(config, model_dir)
    record = test_record(config, data, model, step_curve_steps, git_rev, verbose=verbose, command=command)
    write_chosen_test_settings(model_dir, record)
    record["evaluated_from"] = str(model_dir)
    if results_path:
        results.write_json(results_path, record)
    return record
