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
from typing import Callable, ClassVar, NamedTuple, Optional

import tensorflow as tf

from tfsp.config import FRACTION, POSITIVE, TASK_DECIDES, at_least

ValueFn = Callable[[tf.Tensor], tf.Tensor]

PROJECTIONS = ("clip", "simplex", "none")


@dataclasses.dataclass(unsafe_hash=True)
class RefineConfig:
    """How to refine; also the refinement sections of a method's settings (test_refine,
    train_refine), where the projection is not set: the model takes its task's. Hashable, as
    tf.function keys traces on it (compiled_refine); set while configuring, then only replaced.

    steps: number of ascent steps.
    step_size: η.
    normalize: step along g / ‖g‖ (norm per example) instead of g, as LDRSP/ALEN do.
    adam: per-element Adam on y (moments of g per element of y, bias-corrected; SEAL's
        DVN inference), with β1 = adam_beta_1 and β2 = adam_beta_2; excludes `normalize`.
    decay: step size η_t = η / (1 + decay·t) at step t (0: constant). A normalized step
        of fixed length never shrinks, so without decay it keeps jumping near the optimum.
    best_iterate: return, per example, the iterate with the highest value along the
        trajectory (y_0 included) instead of the last one.
    mirror: ascend the mean of the value of (x, y) and of their left-right mirror images,
        a test-time ensemble of two views of a value network trained with flips (images
        only). It changes the value function, not the step rule, so `refine` does not read
        it: the model does when it builds its test-time value (StructuredModel.value_of);
        the training refinements ascend D on the training crop as it is (train_refine.mirror
        is refused).
    dropout_samples: K >= 1: ascend the mean value over K dropout masks of the value network,
        drawn anew at every step (Monte Carlo dropout, Gal & Ghahramani 2016): an ensemble of D's
        subnetworks, harder for the ascent to exploit than D alone; 0: D in inference mode. Like
        `mirror`, a test-time value the model builds (StructuredModel.value_of); needs a value
        network with dropout; costs K passes of D per step. Dropout in the part of D that
        sees x alone (a multi-label energy's feature network) draws its K masks once per
        refinement, as that part is computed once.
    entropic: entropic mirror ascent (exponentiated gradient) instead of a Euclidean step:
        on the simplex y <- softmax(log y + η·d) per position, on [0, 1] logit(y) <- logit(y)
        + η·d per element (d the gradient, or the normalized one). A step moves an uncertain
        element (y near ½, or a near tie between classes) far more than a confident one, where
        a Euclidean step moves all alike; SPEN's inference (Belanger & McCallum 2016) uses it.
        Iterates stay inside the feasible set, so no projection is needed; elements at 0 or 1
        are first moved ENTROPIC_FLOOR inside (a start at zeros moves little).
    projection: "clip" onto [0, 1], "simplex" onto the probability simplex along
        the last axis (per position), or "none".
    tolerance: stop early once no element of y moved by more than this in a
        step (0 disables early stopping).
    """

    steps: int = 20
    step_size: float = 0.5
    normalize: bool = False
    projection: str = dataclasses.field(default="clip", metadata=TASK_DECIDES)
    tolerance: float = 0.0
    adam: bool = False
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    decay: float = 0.0
    best_iterate: bool = False
    mirror: bool = False
    dropout_samples: int = 0
    entropic: bool = False

    RANGES: ClassVar = {"steps": at_least(0), "dropout_samples": at_least(0), "step_size": POSITIVE,
                        "tolerance": at_least(0), "decay": at_least(0), "adam_beta_1": FRACTION,
                        "adam_beta_2": FRACTION}

    TEST_TIME_ONLY: ClassVar = {"mirror": False, "dropout_samples": 0}
    """Fields that change the value the model ascends at test time (StructuredModel.value_of),
    with their off values; refinements that make training tuples ascend D itself."""

    def without_test_time_options(self) -> "RefineConfig":
        """This refinement with the TEST_TIME_ONLY fields off, for making training tuples."""
        return dataclasses.replace(self, **self.TEST_TIME_ONLY)

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"refinement steps must be >= 0, got {self.steps}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.projection!r}; valid: {PROJECTIONS}")
        if self.adam and self.normalize:
            raise ValueError("refinement: choose one step rule, adam or normalize, not both")
        if self.entropic and self.adam:
            raise ValueError("refinement: entropic steps follow the (normalized) gradient; adam is another "
                             "step rule, choose one")
        if self.entropic and self.projection == "none":
            raise ValueError("refinement: entropic steps need a bounded feasible set (projection clip or "
                             "simplex), not projection none")
        if self.decay < 0:
            raise ValueError(f"refinement decay must be >= 0, got {self.decay}")


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


ENTROPIC_FLOOR = 1e-6
"""How far inside (0, 1) an entropic step first moves an element at the boundary."""


def entropic_step(y, direction, step_size, projection: str):
    """Mirror ascent with the negative entropy as mirror map: the exponentiated-gradient step on
    the simplex (last axis), its Bernoulli form on [0, 1]."""
    y = tf.clip_by_value(y, ENTROPIC_FLOOR, 1.0 - ENTROPIC_FLOOR)
    if projection == "simplex":
        return tf.nn.softmax(tf.math.log(y) + step_size * direction, axis=-1)
    if projection == "clip":
        return tf.sigmoid(tf.math.log(y) - tf.math.log1p(-y) + step_size * direction)
    raise ValueError(f"entropic steps need projection clip or simplex, got {projection!r}")


def ascent_step(y, gradient, config: RefineConfig, step_size=None):
    """One projected gradient, normalized-gradient or entropic ascent step (see `refine` for
    Adam)."""
    if config.normalize:
        gradient = gradient / (_per_example_norm(gradient) + 1e-12)
    step_size = config.step_size if step_size is None else step_size
    if config.entropic:
        return entropic_step(y, gradient, step_size, config.projection)
    return project(y + step_size * gradient, config.projection)


def per_example(values, like):
    """values [B] shaped to broadcast against `like` [B, ...] (one value per example)."""
    return tf.reshape(values, [-1] + [1] * (like.shape.rank - 1))


def refine(value_fn: ValueFn, y0: tf.Tensor, config: RefineConfig,
           return_trajectory: bool = False) -> RefineResult:
    """Projected ascent y <- P(y + η_t·d_t) from y0, as a `tf.while_loop`; d_t is the gradient,
    the normalized gradient or the Adam direction (RefineConfig), η_t = η / (1 + decay·t); or
    the entropic step along d_t (`entropic`).

    With `best_iterate` the result is, per example, the iterate of highest value seen
    (the value at each iterate is computed anyway, with its gradient).

    Under eager execution the same code runs step by step (useful to debug and
    as the benchmark's uncompiled reference); wrap the call in `tf.function`
    (see `compiled_refine`) to run it as one graph.
    """
    y0 = project(tf.convert_to_tensor(y0, tf.float32), config.projection)
    steps = int(config.steps)
    tolerance = float(config.tolerance)
    batch = tf.shape(y0)[0]
    trajectory = None
    if return_trajectory:
        trajectory = tf.TensorArray(tf.float32, size=steps + 1, element_shape=y0.shape,
                                    clear_after_read=False)
        if not config.best_iterate:  # else step i writes the best of y_0..y_i
            trajectory = trajectory.write(0, y0)
    zeros = tf.zeros_like(y0)
    # best: the highest-valued iterate so far and its value ([B]); -inf before the first step.
    state = dict(i=tf.constant(0), y=y0, moved=tf.constant(float("inf")), m=zeros, v=zeros,
                 best_y=y0, best_value=tf.fill([batch], float("-inf")))
    if not config.adam:
        del state["m"], state["v"]
    if not config.best_iterate:
        del state["best_y"], state["best_value"]
    if trajectory is not None:
        state["trajectory"] = trajectory

    def keep_going(s):
        running = s["i"] < steps
        if tolerance > 0:
            running = tf.logical_and(running, s["moved"] > tolerance)
        return running

    def step(s):
        s = dict(s)
        y, i = s["y"], s["i"]
        values, gradient = value_and_gradient(value_fn, y)
        t = tf.cast(i, tf.float32)
        step_size = config.step_size / (1.0 + config.decay * t) if config.decay else config.step_size
        if config.best_iterate:
            better = tf.cast(values, tf.float32) > s["best_value"]
            s["best_y"] = tf.where(per_example(better, y), y, s["best_y"])
            s["best_value"] = tf.where(better, tf.cast(values, tf.float32), s["best_value"])
        if config.adam:
            b1, b2 = config.adam_beta_1, config.adam_beta_2
            s["m"] = b1 * s["m"] + (1.0 - b1) * gradient
            s["v"] = b2 * s["v"] + (1.0 - b2) * tf.square(gradient)
            m_hat = s["m"] / (1.0 - tf.pow(b1, t + 1.0))
            v_hat = s["v"] / (1.0 - tf.pow(b2, t + 1.0))
            y_next = project(y + step_size * m_hat / (tf.sqrt(v_hat) + 1e-8), config.projection)
        else:
            y_next = ascent_step(y, gradient, config, step_size)
        s["moved"] = tf.reduce_max(tf.abs(y_next - y))
        if "trajectory" in s:
            # Entry k is what `steps = k` would return: the k-th iterate, or the best of y_0..y_k.
            s["trajectory"] = (s["trajectory"].write(i, s["best_y"]) if config.best_iterate
                               else s["trajectory"].write(i + 1, y_next))
        s["i"], s["y"] = i + 1, y_next
        return (s,)

    (state,) = tf.while_loop(keep_going, step, (state,), maximum_iterations=steps)
    steps_taken, y = state["i"], state["y"]
    values = value_fn(y)
    if config.best_iterate:
        better = tf.cast(values, tf.float32) > state["best_value"]
        y = tf.where(per_example(better, y), y, state["best_y"])
        values = tf.where(better, values, tf.cast(state["best_value"], values.dtype))
    if trajectory is not None:
        trajectory = state["trajectory"]
        last = state["y"]
        if config.best_iterate:
            trajectory = trajectory.write(steps_taken, y)
            last = y
        # Steps skipped by an early stop repeat the final y, so the stack is dense.

        def fill(j, ta):
            return j + 1, ta.write(j, last)
        _, trajectory = tf.while_loop(lambda j, ta: j <= steps, fill,
                                      (steps_taken + 1, trajectory))
        trajectory = trajectory.stack()
    return RefineResult(y=y, values=values, steps_taken=steps_taken, trajectory=trajectory)


def compiled_refine(jit_compile: bool = False):
    """`refine` wrapped in a `tf.function` (optionally XLA-compiled).

    The returned function retraces for every new `value_fn` object, so build
    the value function once and reuse it when calling repeatedly.
    """
    return tf.function(refine, jit_compile=jit_compile, reduce_retracing=True)
