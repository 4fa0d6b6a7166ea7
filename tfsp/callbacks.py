"""The callbacks of a training run: the stop at a non-finite loss, the resumable epoch
checkpoint (with its training log) and the selection of the best validation epoch."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfsp import results
from tfsp.config import ConfigError
from tfsp.methods import StructuredModel


class CheckpointMismatch(ConfigError):
    """The model directory's checkpoint was written for a different model (another method or
    configuration, or an older version of tfsp whose variables differ)."""


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

    def __init__(self, model: StructuredModel, monitor, mode: str = "max", patience_epochs: int = 0):
        """monitor: a logged metric, or a sequence of them scoring an epoch by their best (the
        maximum, or the minimum with mode "min"). patience_epochs > 0: stop training when the
        best epoch is that many epochs back (early stopping; derived from the checkpointed best
        epoch, so it survives a resume)."""
        super().__init__()
        self.monitors = (monitor,) if isinstance(monitor, str) else tuple(monitor)
        self.monitor, self.sign = ", ".join(self.monitors), (1.0 if mode == "max" else -1.0)
        self.patience_epochs = patience_epochs
        self.best = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best_value")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self.weights = [tf.Variable(np.array(w), trainable=False) for w in model.get_weights()]
        self.state = tf.train.Checkpoint(value=self.best, epoch=self.epoch, weights=self.weights)

    @property
    def best_epoch(self) -> Optional[int]:
        return int(self.epoch.numpy()) or None

    def patience_exhausted(self, epochs_done: int) -> bool:
        """Whether early stopping ends training after `epochs_done` epochs."""
        return bool(self.patience_epochs) and self.best_epoch is not None and (
            epochs_done - self.best_epoch >= self.patience_epochs)

    def on_epoch_end(self, epoch, logs=None):
        values = [float(logs[m]) for m in self.monitors if (logs or {}).get(m) is not None]
        if not values:
            return  # not a validation epoch
        score = max(self.sign * v for v in values)
        if math.isfinite(score) and score > float(self.best.numpy()):
            self.best.assign(score)
            self.epoch.assign(epoch + 1)
            for kept, current in zip(self.weights, self.model.get_weights()):
                kept.assign(current)
        if self.patience_exhausted(epoch + 1):
            logging.info("early stopping after epoch %d: %s last improved at epoch %d",
                         epoch + 1, self.monitor, self.best_epoch)
            self.model.stop_training = True  # the epoch checkpoint after this callback saves it

    def apply(self, model) -> None:
        """Sets the model to the best weights seen, if any epoch was scored."""
        if self.best_epoch is not None:
            model.set_weights([w.numpy() for w in self.weights])

    def on_train_end(self, logs=None):
        self.apply(self.model)


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
