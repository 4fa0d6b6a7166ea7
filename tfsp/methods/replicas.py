"""Replica-aware pieces of a `train_step` (tf.distribute).

Replication (tf.distribute): a `train_step` runs once per replica on that replica's
part of the global batch, and the optimizers sum the replicas' gradients. So every
loss term is the replica's *share* of the global-batch mean (`GlobalBatch.mean`:
sum over the local examples / global batch size), penalties are divided by the
number of replicas (`GlobalBatch.penalty`), statistics passed to `track` are such
shares too (`track` sums them over the replicas), and random numbers come from
`self.uniform`, whose generator gives every replica its own stream.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf


def per_example_mean(values):
    """[B] stays; [B, ...] per-position values are averaged per example (also for B = 0)."""
    if values.shape.rank == 1:
        return values
    return tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))


def _replica_context():
    """The replica context of a multi-replica step, or None (one replica, or cross-replica code)."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def sum_over_replicas(values):
    """The sum of per-replica shares over the replicas (identity with one replica): for
    values used other than through an optimizer, which sums gradients by itself."""
    context = _replica_context()
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values) if context is not None else values


def repeat(count: int, body, state):
    """state = body(state) `count` times: a tf.while_loop, or a Python loop (unrolled in the
    graph) under a tf.distribute strategy, whose synchronization points (optimizer updates,
    all-reduces) cannot sit inside a while_loop body."""
    if not tf.distribute.has_strategy():
        return tf.while_loop(lambda *_: True, body, state, maximum_iterations=int(count))
    for _ in range(int(count)):
        state = body(*state)
    return state


def step_logs(results: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """What a train/test step returns. Keras averages the replicas' step outputs under
    MultiWorkerMirroredStrategy with reduce(MEAN, axis=0), which needs an axis, so there
    each scalar gets one (epoch-end logs are read from the metrics and stay scalars)."""
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return {name: tf.reshape(value, [1]) for name, value in results.items()}
    return results


class GlobalBatch:
    """One replica's part of a training step's global batch (all replicas' examples together).

    Keras optimizers sum the replicas' gradients, so a loss built from `mean` and
    `penalty` has the gradient of the global-batch loss, whatever the number of
    replicas and however unevenly the batch was split (a replica may get no examples).
    """

    def __init__(self, local_size):
        context = _replica_context()
        local = tf.cast(local_size, tf.float32)
        self.num_replicas = context.num_replicas_in_sync if context is not None else 1
        self.size = context.all_reduce(tf.distribute.ReduceOp.SUM, local) if context is not None else local

    def mean(self, values):
        """This replica's share of the global-batch mean of per-example values
        ([B], or [B, ...] averaged per example first)."""
        return tf.reduce_sum(per_example_mean(values)) / self.size

    def penalty(self, losses):
        """This replica's share of penalties that do not depend on the batch (e.g. weight decay)."""
        losses = list(losses)
        return tf.add_n(losses) / self.num_replicas if losses else 0.0


def assign_moving_average(averages, values, decay) -> None:
    """averages ← decay·averages + (1 − decay)·values for lists of variables, on every replica's
    copy: in cross-replica context (merge_call, as Keras' optimizers overwrite weights with their
    moving averages), so it also holds under MirroredStrategy. `decay` is a callable returning a
    scalar tensor, evaluated there (e.g. from an optimizer's update count)."""
    def unwrap(variable):
        return getattr(variable, "value", variable)  # a Keras variable's tf.Variable

    def update(strategy, averages, values):
        rate = tf.cast(decay(), tf.float32)
        for average, value in zip(averages, values):
            strategy.extended.update(
                average, lambda a, v: a.assign(rate * a + (1.0 - rate) * tf.cast(v, a.dtype)), args=(value,))

    averages, values = [unwrap(v) for v in averages], [unwrap(v) for v in values]
    context = tf.distribute.get_replica_context()
    if context is None:  # already cross-replica
        update(tf.distribute.get_strategy(), averages, values)
    else:
        context.merge_call(update, args=(averages, values))
