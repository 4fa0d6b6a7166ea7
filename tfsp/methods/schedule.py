"""The adversarial methods' training schedule (issue 13 item 5): G pretrained on its surrogate
loss alone, then D warmed up alone on the frozen G's outputs, then joint training.

LDRSP and the GAN-family baselines share it, so that the LDRSP paper's comparison differs in the
losses alone. A model takes `PhasedTraining` beside its base class and its settings derive from
`PhasedSettings`; its train_step reads `training_phase` ("pretrain", "warmup" or "joint"), which
the `PhaseSchedule` callback switches at the configured update counts.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras
from absl import logging

from tfsp.config import FRACTION, at_least
from tfsp.methods.base import WithInferenceNetworkSettings

PHASES = ("pretrain", "warmup", "joint")


@dataclasses.dataclass
class PhasedSettings(WithInferenceNetworkSettings):
    g_pretrain_updates: int = 0
    """Schedule: first this many updates train G on its surrogate loss (cross-entropy) alone."""
    d_warmup_updates: int = 0
    """Schedule: then this many train D alone on the frozen G's outputs; then joint training."""

    value_average: float = 0.0
    """Momentum of an exponential moving average of D's weights that prediction ascends
    (StructuredModel.init_value_average); 0: D itself."""

    RANGES: ClassVar = {"g_pretrain_updates": at_least(0), "d_warmup_updates": at_least(0),
                        "value_average": FRACTION}


class PhaseSchedule(keras.callbacks.Callback):
    """Switches the model's training phase at update counts: `boundaries` = [(first update of
    the phase, phase), ...] in increasing order. The update count is epoch × steps_per_epoch +
    batch, so a resumed run is in the phase it left."""

    def __init__(self, boundaries, steps_per_epoch: int):
        super().__init__()
        self.boundaries, self.steps_per_epoch = list(boundaries), int(steps_per_epoch)
        self._epoch = 0

    def phase_at(self, update: int) -> str:
        return [phase for first, phase in self.boundaries if update >= first][-1]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        phase = self.phase_at(self._epoch * self.steps_per_epoch + batch)
        if phase != self.model.training_phase:
            logging.info("training phase %s from update %d", phase, self._epoch * self.steps_per_epoch + batch)
            self.model.set_training_phase(phase)
            self.model.make_train_function()


class PhasedTraining:
    """Model side of the schedule, for a WithInferenceNetwork (d_optimizer trains D, g_optimizer G)."""

    PHASES = PHASES

    def init_schedule(self, settings: PhasedSettings) -> None:
        self.g_pretrain_updates = int(settings.g_pretrain_updates)
        self.d_warmup_updates = int(settings.d_warmup_updates)
        self.training_phase = "joint"

    def training_callbacks(self, steps_per_epoch: int) -> list:
        """The schedule of g_pretrain_updates / d_warmup_updates, if any."""
        if not (self.g_pretrain_updates or self.d_warmup_updates):
            return []
        first_joint = self.g_pretrain_updates + self.d_warmup_updates
        return [PhaseSchedule([(0, "pretrain"), (self.g_pretrain_updates, "warmup"), (first_joint, "joint")],
                              steps_per_epoch)]

    def optimizer_updates_at(self, optimizer_name: str, run_updates: int) -> int:
        """D is not updated while G is pretrained, G not while D warms up."""
        pretrain, warmup = self.g_pretrain_updates, self.d_warmup_updates
        if optimizer_name == "d_optimizer":
            return max(0, run_updates - pretrain)
        return min(run_updates, pretrain) + max(0, run_updates - pretrain - warmup)

    def set_training_phase(self, phase: str) -> None:
        """pretrain: G on its surrogate loss alone; warmup: D alone on the frozen G; joint: both.
        The compiled train step bakes the phase in, so it is dropped here."""
        if phase not in PHASES:
            raise ValueError(f"unknown training phase {phase!r}; valid: {PHASES}")
        if phase != self.training_phase:
            self.training_phase = phase
            self.train_function = None
