"""Pictures of structured outputs: colouring masks, grids of refinement steps, TensorBoard images."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

# Class colours of the LFW part labels (hair red, face green, background blue).
CLASS_COLOURS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)


def colour(y: np.ndarray) -> np.ndarray:
    """[..., H, W, C] relaxed output -> [..., H, W, 3] RGB in [0, 1]: grey levels for one
    channel (foreground probability), class colours mixed by probability for several."""
    y = np.asarray(y, np.float32)
    if y.shape[-1] == 1:
        return np.repeat(y, 3, axis=-1)
    colours = CLASS_COLOURS[: y.shape[-1]] if y.shape[-1] <= len(CLASS_COLOURS) else \
        np.random.RandomState(0).rand(y.shape[-1], 3).astype(np.float32)
    return np.clip(y @ colours, 0.0, 1.0)


def refinement_grid(images, truths, trajectory, steps: Sequence[int]) -> np.ndarray:
    """One row per example: image, ground truth, then the output after each of `steps`.

    trajectory: [T + 1, N, H, W, C]. Returns an RGB image [N*H, (2 + len(steps))*W, 3].
    """
    columns = [np.asarray(images, np.float32), colour(truths)]
    columns += [colour(trajectory[min(s, len(trajectory) - 1)]) for s in steps]
    rows = [np.concatenate([c[i] for c in columns], axis=1) for i in range(len(images))]
    return np.concatenate(rows, axis=0)


class RefinementImages(keras.callbacks.Callback):
    """Writes, every `every` epochs, a grid of a few validation masks along the refinement trajectory
    to TensorBoard (tag "refinement")."""

    def __init__(self, log_dir, images, truths, every: int = 5, steps: Sequence[int] = None):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "images"))
        self.images = tf.constant(images, tf.float32)
        self.truths = np.asarray(truths, np.float32)
        self.every = max(1, int(every))
        self.steps = steps

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        trajectory = self.model.infer(self.images, return_trajectory=True)["trajectory"].numpy()
        last = len(trajectory) - 1
        steps = self.steps or sorted({0, last // 6, last // 3, last})
        grid = refinement_grid(self.images.numpy(), self.truths, trajectory, steps)
        with self.writer.as_default():
            tf.summary.image("refinement", grid[np.newaxis], step=epoch + 1,
                             description=f"columns: image, ground truth, refinement steps {steps}")
        self.writer.flush()


# ----- monitoring: configuration, D's scores of generated samples ------------------------------
def flatten_config(config: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; values that are not bool/int/float/str become strings
    (what hparams accepts)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


class ConfigSummary(keras.callbacks.Callback):
    """Writes the run's configuration once, at the start of training, to `log_dir` itself (the
    parent of Keras's train/ and validation/ runs, so the HParams dashboard pairs them):
    as text (tag "config", the JSON) and as hparams (the flattened fields)."""

    def __init__(self, log_dir, config: dict):
        super().__init__()
        self.log_dir, self.config = str(log_dir), config

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            tf.summary.text("config", "```\n" + json.dumps(self.config, indent=2) + "\n```", step=0)
            hp.hparams(flatten_config(self.config), trial_id=os.path.basename(os.path.dirname(
                self.log_dir.rstrip("/"))) or None)
        writer.flush()
        writer.close()


class SampleValues(keras.callbacks.Callback):
    """Every `every` epochs, on a fixed small batch (x, y*): for each kind of output — the ground
    truth, the method's starting point (G(x) or zeros), its test-time prediction and the samples
    its training step generates (`generate_samples`: refined, adversarial, ...) — a histogram of
    D's values ("value/<kind>") and the mean oracle value v*(y, y*) ("oracle/<kind>"), in
    `log_dir`/samples. Runs at epoch end outside the training step, so it works the same under
    any tf.distribute strategy; the sampling RNG state is restored so training is unaffected."""

    def __init__(self, log_dir, x, y, every: int = 1):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "samples"))
        self.x = tf.constant(x)
        self.y = tf.constant(y, tf.float32)
        self.every = max(1, int(every))
        self._warned = False

    def outputs_by_kind(self):
        model = self.model
        x = model.prepare_inputs(self.x)
        start, extras = model.initial_output(x)
        kinds = {"ground_truth": self.y,
                 ("inference_net" if "y_inference_net" in extras else "start"): start,
                 "prediction": model.infer(self.x)["y"]}
        if model.distribute_strategy.num_replicas_in_sync > 1:
            # The sampling generator lives on the replicas; drawing from it here, outside a
            # replica context, is not allowed, so generated samples are shown for one-replica runs.
            if not self._warned:
                logging.warning("TensorBoard sample histograms: generated samples are skipped "
                                "under %d replicas", model.distribute_strategy.num_replicas_in_sync)
                self._warned = True
            return x, kinds
        saved = tf.identity(model.sampling_rng.state)
        try:
            for kind, y in model.generate_samples(x, self.y).items():
                kinds.setdefault(kind, y)
        finally:
            model.sampling_rng.state.assign(saved)  # training draws what it would have drawn
        return x, kinds

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        model = self.model
        x, kinds = self.outputs_by_kind()
        value_fn = model.value_of(x)
        with self.writer.as_default():
            for kind, y in kinds.items():
                tf.summary.scalar(f"oracle/{kind}", tf.reduce_mean(model.spec.oracle_fn(y, self.y)),
                                  step=epoch + 1)
                if value_fn is not None:
                    tf.summary.histogram(f"value/{kind}", value_fn(y), step=epoch + 1,
                                         description=f"D's value of {kind} outputs on a fixed batch")
        self.writer.flush()


def monitoring_callbacks(config, data, log_dir, samples: int = 16):
    """The TensorBoard extras of a run besides keras.callbacks.TensorBoard and RefinementImages:
    the configuration (text and hparams) and D's values / the oracle per kind of sample, on a
    fixed validation batch (cropped to the training crop size for segmentation)."""
    callbacks = [ConfigSummary(log_dir, config.to_dict())]
    if data.validation is not None:
        x, y = next(iter(data.validation.unbatch().batch(samples)))
        crop = data.spec.crop_size
        if crop and x.shape[1] != crop:
            x, y = x[:, :crop, :crop], y[:, :crop, :crop]
        callbacks.append(SampleValues(log_dir, x.numpy(), y.numpy(),
                                      every=max(1, config.epochs // 50)))
    return callbacks
