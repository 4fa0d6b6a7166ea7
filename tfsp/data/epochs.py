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

from tfsp.data.errors import DataError

MakeEpoch = Callable[[tf.Tensor], tf.data.Dataset]
"""key (int64 [2]) -> one epoch of batches, a function of the key alone."""

_NO_END = 2 ** 62


def epoch_key(seed, epoch) -> tf.Tensor:
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])


def check_batches(n: int, batch_size: int, *, drop_remainder: bool = False, split: str = "dataset",
                  batch_setting: str = "data.batch_size") -> int:
    """The number of batches of `n` examples; a DataError when there would be none.

    An epoch with no batches is an error, not an empty loop: the endless stream of epochs
    (`epochs` with first_epoch) would wait forever for a first batch.
    """
    if batch_size <= 0:
        raise DataError(f"{batch_setting} must be positive, got {batch_size} (--set {batch_setting}=N)")
    if n == 0:
        raise DataError(f"the {split} split has no examples")
    if drop_remainder and n < batch_size:
        raise DataError(f"the {split} split has {n} examples, fewer than one batch of {batch_setting}={batch_size}, "
                        f"and its partial batch is dropped (drop_remainder): an epoch would have no batches; "
                        f"lower it with --set {batch_setting}={n} or less, or give the split more examples")
    return n // batch_size if drop_remainder else -(-n // batch_size)


def epochs(make_epoch: MakeEpoch, seed: int, num_batches: int,
           first_epoch: Optional[int] = None) -> tf.data.Dataset:
    """The epochs of a training pipeline.

    first_epoch None: a finite dataset of one epoch that changes with every iteration
        (iteration k of any dataset built with the same seed is the same); for plain
        `fit(dataset, epochs=...)`.
    first_epoch k: an endless stream of epochs k, k + 1, ... back to back, epoch e
        keyed [seed, e]; for `fit(stream, steps_per_epoch=num_batches, initial_epoch=k)`.
    """
    if num_batches <= 0:
        raise DataError(f"a training pipeline with {num_batches} batches per epoch would never yield a batch")
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
                     first_epoch: Optional[int] = None, *, split: str = "train") -> tf.data.Dataset:
    """Batches of a tuple of equally long arrays in an order drawn anew every epoch (see `epochs`)."""
    tensors = tuple(tf.constant(a) for a in arrays)
    n = int(tensors[0].shape[0])
    num_batches = check_batches(n, batch_size, split=split)

    def make_epoch(key):
        order = tf.data.Dataset.from_tensor_slices(permutation(n, key)).batch(batch_size)
        return order.map(lambda idx: tuple(tf.gather(t, idx) for t in tensors))

    return epochs(make_epoch, seed, num_batches=num_batches, first_epoch=first_epoch)
