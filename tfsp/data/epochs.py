"""Training pipelines whose randomness is a function of (seed, epoch) alone.

`Dataset.shuffle(reshuffle_each_iteration=True)` and `Dataset.random` draw each
epoch's randomness from state that lives in the process, so a run resumed at
epoch k would see epoch 0's order again. Here an epoch is built by
`make_epoch(key)` from stateless ops seeded by `key`, and the key of epoch e is
[seed, e]: a run resumed at epoch k trains on exactly the batches an
uninterrupted run trains on from epoch k.
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

MakeEpoch = Callable[[tf.Tensor], tf.data.Dataset]
"""key (int64 [2]) -> one epoch of batches, a function of the key alone."""

_NO_END = 2 ** 62


def epoch_key(seed, epoch) -> tf.Tensor:
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])


def epochs(make_epoch: MakeEpoch, seed: int, num_batches: int,
           first_epoch: Optional[int] = None) -> tf.data.Dataset:
    """The epochs of a training pipeline.

    first_epoch None: a finite dataset of one epoch that changes with every iteration
        (iteration k of any dataset built with the same seed is the same); for plain
        `fit(dataset, epochs=...)`.
    first_epoch k: an endless stream of epochs k, k + 1, ... back to back, epoch e
        keyed [seed, e]; for `fit(stream, steps_per_epoch=num_batches, initial_epoch=k)`.
    """
    if first_epoch is None:
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        keys = keys.map(lambda r: tf.stack([tf.cast(seed, tf.int64), r]))
        dataset = keys.flat_map(make_epoch).apply(tf.data.experimental.assert_cardinality(num_batches))
    else:
        dataset = tf.data.Dataset.range(int(first_epoch), _NO_END).flat_map(
            lambda epoch: make_epoch(epoch_key(seed, epoch)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def permutation(n: int, key) -> tf.Tensor:
    """A permutation of 0..n-1, a function of key alone."""
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)


def shuffled_batches(arrays, batch_size: int, seed: int,
                     first_epoch: Optional[int] = None) -> tf.data.Dataset:
    """Batches of a tuple of equally long arrays in an order drawn anew every epoch (see `epochs`)."""
    tensors = tuple(tf.constant(a) for a in arrays)
    n = int(tensors[0].shape[0])

    def make_epoch(key):
        order = tf.data.Dataset.from_tensor_slices(permutation(n, key)).batch(batch_size)
        return order.map(lambda idx: tuple(tf.gather(t, idx) for t in tensors))

    return epochs(make_epoch, seed, num_batches=-(-n // batch_size), first_epoch=first_epoch)
