"""--mode=probe's measures on a value function known in closed form."""

import numpy as np
import pytest
import tensorflow as tf

from tfsp.probe import probe_value_network
from tfsp.refine import RefineConfig
from tfsp.spec import multilabel_spec


class DistanceValueModel:
    """Inputs are the labels themselves (x = y*); value(y) = 1 − mean((y − y*)²); refinement
    starts from a fixed 0.5 everywhere, where the gradient points straight at y*."""

    refines = True

    def __init__(self, spec):
        self.spec, self.name = spec, "distance"
        self.test_refine = RefineConfig(steps=5, step_size=0.1, normalize=True, projection="clip")

    def prepare_inputs(self, x):
        return tf.cast(x, tf.float32)

    def value_of(self, x):
        return lambda y: 1.0 - tf.reduce_mean(tf.square(y - x), axis=-1)

    def initial_output(self, x):
        return 0.5 * tf.ones_like(x), {}

    def infer(self, x):
        return {"y": 0.25 + 0.5 * tf.cast(x, tf.float32)}


def test_probe_ranks_and_gradient_cosine_of_a_known_value():
    spec = multilabel_spec("toy", num_features=6, num_labels=6)
    labels = np.random.default_rng(0).integers(0, 2, size=(12, 6)).astype(np.float32)
    labels[:, 0] = 1.0  # no example without a label (F1 of an empty set)
    dataset = tf.data.Dataset.from_tensor_slices((labels, labels)).batch(5)
    probed = probe_value_network(DistanceValueModel(spec), dataset)

    assert probed["ground_truth"]["value"] == pytest.approx(1.0)
    assert "below_ground_truth" not in probed["ground_truth"]
    for kind in ("prediction", "zeros", "start"):
        assert probed[kind]["below_ground_truth"] == pytest.approx(1.0), kind  # every one strictly lower
    assert probed["start"]["value"] == pytest.approx(0.75)  # (0.5)² away everywhere
    assert probed["start"]["gradient_cosine"] == pytest.approx(1.0, abs=1e-5)  # ∇ ∝ y* − start
    assert probed["start"]["first_step_cosine"] == pytest.approx(1.0, abs=1e-5)  # inside [0, 1]: not clipped
    assert probed["start"]["first_step_oracle"] > probed["start"]["oracle"]
    # noise is below y* wherever it is not equal to it (almost surely)
    assert probed["noise"]["below_ground_truth"] == pytest.approx(1.0)
