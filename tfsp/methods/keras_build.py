"""The Keras workaround for building a method before fit, in one place.

Checkpoints are restored (and optimizers built) before `fit`, so every variable must exist
before the first batch: tfsp.build.build runs the model's `build_networks` on a zeros batch,
then `mark_built`. Keras marks a layer built when it is *called*; the value networks are used
through `precompute(x)` / `score(context, y)` (so the part that depends on x alone runs once per
refinement), not through `__call__`, so Keras leaves them, and the containers holding them,
unbuilt although all their variables exist. Unbuilt, `fit` would (a) build the model again from a
sample batch and (b), under a tf.distribute strategy, fetch that batch and average it with
strategy.reduce, which fails for (x, y) batches under MultiWorkerMirroredStrategy.
`BuiltBeforeFit` skips the sample batch for a model so marked.
"""

from __future__ import annotations

import keras


def mark_built(model: keras.Model) -> None:
    """Marks built every layer (innermost first) whose sub-layers are all built."""
    for layer in reversed(list(model._flatten_layers())):
        inner = list(layer._flatten_layers(include_self=False))
        if not layer.built and inner and all(sub.built for sub in inner):
            layer.built = True


class BuiltBeforeFit:
    """Mix-in of keras.Model: under a strategy, a model whose layers are all built (mark_built)
    is built by fit without a sample batch."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        built = all(layer.built for layer in self._flatten_layers())
        if iterator is not None and built and getattr(self, "_distribute_strategy", None) is not None:
            with self.distribute_strategy.scope():
                self._symbolic_build(data_batch=None)
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
