"""The one refinement routine: projected gradient ascent on a value / energy network.

Every method and task refines through `refine`: DVN inference from zeros, LDRSP's
normalized-gradient refinement of G(x), sample generation inside `train_step`,
SavedModel serving. The loop is a `tf.while_loop`, so inside a `tf.function`
(Keras `train_step` / `predict_step`, or `compiled_refine`) it is one graph op
whatever the number of steps.

`value_fn` maps y to a per-example value of shape [B] (higher is better). It is
expected to close over everything that depends on x alone (e.g. the feature
network b(x), computed once before the loop), so a step costs only the part of
the network that touches y.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import tensorflow as tf

ValueFn = Callable[[tf.Tensor], tf.Tensor]

PROJECTIONS = ("clip", "simplex", "none")


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """How to refine.

    steps: number of ascent steps.
    step_size: η.
    normalize: use g / ‖g‖ (norm per example) instead of g, as LDRSP/ALEN do.
    projection: "clip" onto [0, 1], "simplex" onto the probability simplex along
        the last axis (per position), or "none".
    tolerance: stop early once no element of y moved by more than this in a
        step (0 disables early stopping).
    """

    steps: int = 20
    step_size: float = 0.5
    normalize: bool = False
    projection: str = "clip"
    tolerance: float = 0.0

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"refinement steps must be >= 0, got {self.steps}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.projection!r}; valid: {PROJECTIONS}")


class RefineResult(NamedTuple):
    y: tf.Tensor
    """The refined output, same shape as the initial y."""
    values: tf.Tensor
    """value_fn(y) of the returned y, shape [B]."""
    steps_taken: tf.Tensor
    """How many steps ran (fewer than `steps` when the tolerance stopped it)."""
    trajectory: Optional[tf.Tensor]
    """[steps + 1, *y.shape]: y before step 0 and after each step (only when asked);
    after an early stop the remaining entries repeat the final y."""


def project_to_simplex(v: tf.Tensor) -> tf.Tensor:
    """Euclidean projection of each vector along the last axis onto the probability simplex.

    The sort-based algorithm of Held et al. (1974) / Duchi et al. (2008),
    vectorized over all leading axes.
    """
    v = tf.convert_to_tensor(v)
    num_classes = tf.shape(v)[-1]
    u = tf.sort(v, axis=-1, direction="DESCENDING")
    cumulative = tf.cumsum(u, axis=-1) - 1.0
    index = tf.cast(tf.range(1, num_classes + 1), v.dtype)
    support = tf.cast(u - cumulative / index > 0, tf.int32)
    # rho = the number of entries in the support; it is always >= 1.
    rho = tf.reduce_sum(support, axis=-1, keepdims=True)
    theta = tf.gather(cumulative, rho - 1, batch_dims=v.shape.rank - 1) / tf.cast(rho, v.dtype)
    return tf.maximum(v - theta, 0.0)


def project(y: tf.Tensor, projection: str) -> tf.Tensor:
    if projection == "clip":
        return tf.clip_by_value(y, 0.0, 1.0)
    if projection == "simplex":
        return project_to_simplex(y)
    if projection == "none":
        return y
    raise ValueError(f"unknown projection {projection!r}; valid: {PROJECTIONS}")


def value_and_gradient(value_fn: ValueFn, y: tf.Tensor):
    """value_fn(y) [B] and d(sum value)/dy; examples are independent, so this is each example's gradient."""
    with tf.GradientTape() as tape:
        tape.watch(y)
        values = value_fn(y)
    return values, tape.gradient(values, y)


def _per_example_norm(g: tf.Tensor) -> tf.Tensor:
    axes = list(range(1, g.shape.rank))
    return tf.sqrt(tf.reduce_sum(tf.square(g), axis=axes, keepdims=True))


def ascent_step(y, gradient, config: RefineConfig):
    """One projected (optionally normalized) ascent step."""
    if config.normalize:
        gradient = gradient / (_per_example_norm(gradient) + 1e-12)
    return project(y + config.step_size * gradient, config.projection)


def refine(value_fn: ValueFn, y0: tf.Tensor, config: RefineConfig,
           return_trajectory: bool = False) -> RefineResult:
    """Projected gradient ascent y <- P(y + η·g) from y0, as a `tf.while_loop`.

    Under eager execution the same code runs step by step (useful to debug and
    as the benchmark's uncompiled reference); wrap the call in `tf.function`
    (see `compiled_refine`) to run it as one graph.
    """
    y0 = project(tf.convert_to_tensor(y0, tf.float32), config.projection)
    steps = int(config.steps)
    tolerance = float(config.tolerance)
    trajectory = None
    if return_trajectory:
        trajectory = tf.TensorArray(tf.float32, size=steps + 1, element_shape=y0.shape,
                                    clear_after_read=False)
        trajectory = trajectory.write(0, y0)

    def keep_going(i, y, moved, trajectory):
        del y, trajectory
        running = i < steps
        if tolerance > 0:
            running = tf.logical_and(running, moved > tolerance)
        return running

    def step(i, y, moved, trajectory):
        _, gradient = value_and_gradient(value_fn, y)
        y_next = ascent_step(y, gradient, config)
        moved = tf.reduce_max(tf.abs(y_next - y))
        if trajectory is not None:
            trajectory = trajectory.write(i + 1, y_next)
        return i + 1, y_next, moved, trajectory

    loop_vars = (tf.constant(0), y0, tf.constant(float("inf")), trajectory)
    if trajectory is None:
        loop_vars = loop_vars[:3]
        body = lambda i, y, moved: step(i, y, moved, None)[:3]  # noqa: E731
        cond = lambda i, y, moved: keep_going(i, y, moved, None)  # noqa: E731
    else:
        body, cond = step, keep_going
    outputs = tf.while_loop(cond, body, loop_vars, maximum_iterations=steps)
    steps_taken, y = outputs[0], outputs[1]
    if trajectory is not None:
        trajectory = outputs[3]
        # Steps skipped by an early stop repeat the final y, so the stack is dense.
        def fill(j, ta):
            return j + 1, ta.write(j, y)
        _, trajectory = tf.while_loop(lambda j, ta: j <= steps, fill,
                                      (steps_taken + 1, trajectory))
        trajectory = trajectory.stack()
    return RefineResult(y=y, values=value_fn(y), steps_taken=steps_taken, trajectory=trajectory)


def compiled_refine(jit_compile: bool = False):
    """`refine` wrapped in a `tf.function` (optionally XLA-compiled).

    The returned function retraces for every new `value_fn` object, so build
    the value function once and reuse it when calling repeatedly.
    """
    return tf.function(refine, jit_compile=jit_compile, reduce_retracing=True)
