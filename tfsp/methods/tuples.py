"""The training tuples the sampling methods (DVN, LDRSP) generate besides their own: adversarial
ascent on the value network's loss, and tuples made from y* alone. Random numbers come from the
model's sampling stream (`model.uniform`: one stream per replica, checkpointed with the model)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tfsp.config import POSITIVE, PROBABILITY, at_least
from tfsp.methods.replicas import per_example_mean
from tfsp.refine import RefineConfig, per_example, refine


@dataclasses.dataclass
class AdversarialConfig:
    """Adversarial tuples: gradient *ascent on the value-regression loss* w.r.t. y.

    steps / step_size: the ascent (DVN: one step of the inference step size).
    from_ground_truth: fraction of examples started from y*; the rest start from
        the method's default start (zeros for DVN, G(x) for LDRSP).
    """

    steps: int = 1
    step_size: float = 0.5
    normalize: bool = False
    from_ground_truth: float = 0.5
    objective: str = "loss"
    """"loss": ascend D's regression loss (DVN paper Sec. 3.2, LDRSP/ALEN); "value": ascend D's
    value instead, which is what the published DVN code's adversarial branch computes
    (it evaluates the value gradient there, not the loss gradient)."""
    best_iterate: bool = False
    """Keep the most adversarial iterate (highest objective) along the ascent, per example."""

    RANGES: ClassVar = {"steps": at_least(0), "step_size": POSITIVE, "from_ground_truth": PROBABILITY,
                        "objective": ((lambda v: v in ("loss", "value")), "loss or value")}

    def __post_init__(self):
        if self.objective not in ("loss", "value"):
            raise ValueError(f"adversarial objective must be 'loss' or 'value', got {self.objective!r}")


REFERENCE_SAMPLE_KINDS = ("ground_truth", "stratified", "mismatched")
"""Training tuples made from y* alone (`reference_samples`)."""


def checked_sample_weights(weights, valid, method: str) -> Dict[str, float]:
    """{kind: weight} of the kinds with a non-zero weight; a kind not in `valid` is an error
    naming the method and the valid kinds."""
    unknown = set(weights) - set(valid)
    if unknown:
        raise ValueError(f"unknown {method} sample kinds {sorted(unknown)}; valid: {list(valid)}")
    return {k: float(v) for k, v in weights.items() if v}


def mixed_starts(model, alternative, y_start, fraction: float):
    """Per example, `alternative` (e.g. y*) with probability `fraction` (drawn from model's
    sampling stream), else y_start."""
    chosen = model.uniform([tf.shape(alternative)[0]]) < fraction
    return tf.where(per_example(chosen, alternative), alternative, y_start)


def trajectory_samples(model, trajectory):
    """Per example b, iterate pick[b] (uniform over y_0 .. y_T) of a refinement path of shape
    [T + 1, B, ...], so D is also fitted where ascent passes, not only where it ends."""
    iterates, batch = tf.shape(trajectory)[0], tf.shape(trajectory)[1]
    pick = tf.minimum(tf.cast(model.uniform([batch]) * tf.cast(iterates, tf.float32), tf.int32), iterates - 1)
    return tf.stop_gradient(tf.gather_nd(trajectory, tf.stack([pick, tf.range(batch)], axis=1)))


def adversarial_samples(model, regression_loss_fn, value_fn, y_true, y_start, config: AdversarialConfig):
    """For `model` (a StructuredModel: its sampling stream and task), tuples that the value network currently scores worst: ascend its loss from y* or y_start.

    regression_loss_fn(y) -> per-example loss of D against the oracle at y
    (the oracle value is treated as a constant in each step, as in DVN);
    value_fn(y) -> D's value, ascended instead when config.objective == "value".
    """
    y0 = mixed_starts(model, y_true, y_start, config.from_ground_truth)
    ascent = RefineConfig(steps=config.steps, step_size=config.step_size,
                          normalize=config.normalize, projection=model.spec.projection,
                          best_iterate=config.best_iterate)
    objective = regression_loss_fn if config.objective == "loss" else value_fn
    return tf.stop_gradient(refine(objective, y0, ascent).y)

def stratified_samples(model, y_true):
    """Interpolations y = (1 - t) y* + t u, u ~ U[0,1], with t stratified over the batch.

    They cover the range of oracle values evenly, from y* (t≈0) to noise (t≈1).
    """
    batch = tf.shape(y_true)[0]
    strata = (tf.cast(tf.range(batch), tf.float32) + model.uniform([batch])) / tf.cast(batch, tf.float32)
    t = per_example(strata, y_true)
    noise = model.uniform(tf.shape(y_true))
    if model.spec.multiclass:
        noise = noise / tf.reduce_sum(noise, axis=-1, keepdims=True)
    return (1.0 - t) * y_true + t * noise

def mismatched_samples(y_true):
    """y* of another example of the batch (the batch rolled by one): a well-formed output
    that is wrong for this x, so D must look at x to value it (interpolations to noise and
    steps from G(x) can be told apart from y* by their look alone)."""
    return tf.roll(y_true, shift=1, axis=0)

def reference_samples(model, kinds, y_true) -> Dict[str, tf.Tensor]:
    """{kind: y} for the kinds among ground_truth, stratified and mismatched: tuples made
    from y* alone, without the value network."""
    makers = {"ground_truth": lambda: y_true, "stratified": lambda: stratified_samples(model, y_true),
              "mismatched": lambda: mismatched_samples(y_true)}
    return {kind: makers[kind]() for kind in REFERENCE_SAMPLE_KINDS if kind in kinds}


def score_samples(value_net, context, samples: Dict[str, tf.Tensor], training: bool = False) -> Dict[str, tf.Tensor]:
    """{kind: D's logits} for every kind of tuple, from one pass of the value network over all
    kinds stacked along the batch (`context` repeated once per kind): one large batch keeps the
    CPU's matrix units busier than a pass per kind. Dropout draws its masks for the stacked batch,
    which is the same distribution as one mask per kind."""
    kinds = list(samples)
    if len(kinds) == 1:
        return {kinds[0]: value_net.score(context, samples[kinds[0]], training=training)}
    stacked_context = tf.nest.map_structure(lambda c: tf.concat([c] * len(kinds), axis=0), context)
    logits = value_net.score(stacked_context, tf.concat([samples[k] for k in kinds], axis=0), training=training)
    return dict(zip(kinds, tf.split(logits, len(kinds), axis=0)))


def ranking_loss(scores: Dict[str, tf.Tensor], targets: Dict[str, tf.Tensor], margin: float) -> tf.Tensor:
    """[B]: a pairwise hinge on D's logits over one example's tuples (the `scores` kinds, each
    with its oracle value in `targets`, ground_truth 1 where absent): for every pair with
    v*_i > v*_j, max(0, margin·(v*_i − v*_j) − (s_i − s_j)), averaged over such pairs (0 with
    none). Margin rescaling as in a structured SVM, on D's value: refinement follows the order
    D puts outputs in, which regression to v* alone leaves loose exactly where refinement goes
    (a D valuing its refined outputs above the ground truth). Per-position scores and targets
    (a patch D) are averaged per example first."""
    kinds = list(scores)
    s = tf.stack([per_example_mean(tf.cast(scores[k], tf.float32)) for k in kinds], axis=1)  # [B, K]
    v = tf.stack([per_example_mean(tf.broadcast_to(tf.cast(targets.get(k, 1.0), tf.float32),
                                                   tf.shape(scores[k]))) for k in kinds], axis=1)
    value_gap = v[:, :, None] - v[:, None, :]  # [B, K, K]: v*_i − v*_j
    ordered = tf.cast(value_gap > 1e-6, tf.float32)
    hinge = tf.nn.relu(margin * value_gap - (s[:, :, None] - s[:, None, :])) * ordered
    return tf.reduce_sum(hinge, axis=[1, 2]) / tf.maximum(tf.reduce_sum(ordered, axis=[1, 2]), 1.0)
