"""Pictures of structured outputs: colouring masks, grids of refinement steps, TensorBoard images."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

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
