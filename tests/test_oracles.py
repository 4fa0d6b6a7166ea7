import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfsp import oracles


def f1_reference(y, t):
    inter = np.minimum(y, t).sum()
    union = np.maximum(y, t).sum()
    return 1.0 if inter + union == 0 else 2 * inter / (inter + union)


def iou_reference(y, t):
    inter = np.minimum(y, t).sum()
    union = np.maximum(y, t).sum()
    return 1.0 if union == 0 else inter / union


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 4, 1)])
def test_soft_f1_and_iou_match_bruteforce(shape):
    rng = np.random.RandomState(0)
    y = rng.rand(*shape).astype(np.float32)
    t = (rng.rand(*shape) < 0.4).astype(np.float32)
    t[0] = 0  # an empty truth
    y[1] = 0
    t[1] = 0  # empty and empty
    f1 = oracles.soft_f1(y, t).numpy()
    iou = oracles.soft_iou(y, t).numpy()
    for i in range(shape[0]):
        assert f1[i] == pytest.approx(f1_reference(y[i], t[i]), abs=1e-6)
        assert iou[i] == pytest.approx(iou_reference(y[i], t[i]), abs=1e-6)
    assert f1[1] == 1.0 and iou[1] == 1.0
    assert f1[0] == 0.0


def test_binary_f1_equals_set_f1_exhaustively():
    # On {0,1} the relaxed oracle is the discrete F1 for every pair of 4-label sets.
    sets = np.array(list(itertools.product([0, 1], repeat=4)), np.float32)
    y = np.repeat(sets, len(sets), axis=0)
    t = np.tile(sets, (len(sets), 1))
    f1 = oracles.soft_f1(y, t).numpy()
    for i in range(len(y)):
        tp = (y[i] * t[i]).sum()
        expected = 1.0 if y[i].sum() + t[i].sum() == 0 else 2 * tp / (y[i].sum() + t[i].sum())
        assert f1[i] == pytest.approx(expected)


def test_per_position_f1_and_pixel_accuracy():
    rng = np.random.RandomState(1)
    logits = rng.randn(2, 3, 3, 3)
    y = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    t = np.eye(3)[rng.randint(3, size=(2, 3, 3))]
    pp = oracles.per_position_f1(y.astype(np.float32), t).numpy()
    expected = 2 * np.minimum(y, t).sum(-1) / (y + t).sum(-1)
    np.testing.assert_allclose(pp, expected, atol=1e-6)
    acc = oracles.pixel_accuracy(y.astype(np.float32), t).numpy()
    np.testing.assert_allclose(acc, (y.argmax(-1) == t.argmax(-1)).mean(axis=(1, 2)), atol=1e-6)
    soft = oracles.soft_pixel_accuracy(y.astype(np.float32), t).numpy()
    np.testing.assert_allclose(soft, np.minimum(y, t).sum(-1).mean(axis=(1, 2)), atol=1e-6)


def test_binary_mask_per_position_f1_is_correctness():
    y = np.array([[[[0.0], [1.0]], [[1.0], [0.0]]]], np.float32)
    t = np.array([[[[0.0], [1.0]], [[0.0], [0.0]]]], np.float32)
    np.testing.assert_allclose(oracles.per_position_f1(y, t).numpy(), [[[1, 1], [0, 1]]])


def test_binarize():
    y = tf.constant([[0.2, 0.5, 0.9]])
    np.testing.assert_array_equal(oracles.binarize(y, multiclass=False).numpy(), [[0, 1, 1]])
    # A stack of label vectors (e.g. a refinement trajectory [T, B, L]) is thresholded too.
    np.testing.assert_array_equal(oracles.binarize(tf.stack([y, y]), multiclass=False).numpy(), [[[0, 1, 1]]] * 2)
    probs = tf.constant([[[[0.2, 0.5, 0.3]]]])
    np.testing.assert_array_equal(oracles.binarize(probs, multiclass=True).numpy(), [[[[0, 1, 0]]]])


def test_unknown_oracle_lists_valid_names():
    with pytest.raises(ValueError, match="valid"):
        oracles.get_oracle("nope")


def test_discrete_oracles_score_the_output_prediction_reads_off():
    """A discrete oracle is the oracle of the arg-max (class axis) or thresholded output: making y
    more confident without changing that output leaves it unchanged."""
    t = np.eye(3, dtype=np.float32)[[[0, 1], [2, 2]]][None]  # [1, 2, 2, 3] one-hot
    soft = np.array([[[[0.5, 0.3, 0.2], [0.2, 0.4, 0.4]], [[0.1, 0.2, 0.7], [0.4, 0.35, 0.25]]]], np.float32)
    hard = oracles.binarize(soft, multiclass=True).numpy()
    accuracy = oracles.get_oracle("discrete_pixel_accuracy")
    np.testing.assert_allclose(accuracy(soft, t).numpy(), accuracy(hard, t).numpy())
    np.testing.assert_allclose(accuracy(soft, t).numpy(), oracles.pixel_accuracy(soft, t).numpy())
    assert oracles.soft_pixel_accuracy(hard, t).numpy() != oracles.soft_pixel_accuracy(soft, t).numpy()
    per_position = oracles.get_oracle("discrete_per_position_f1")
    np.testing.assert_allclose(per_position(soft, t).numpy(), oracles.per_position_f1(hard, t).numpy())

    labels = np.array([[1, 0, 1, 0]], np.float32)
    relaxed = np.array([[0.9, 0.4, 0.6, 0.1]], np.float32)
    for name, relaxed_oracle in (("discrete_f1", oracles.soft_f1), ("discrete_iou", oracles.soft_iou)):
        np.testing.assert_allclose(oracles.get_oracle(name)(relaxed, labels).numpy(),
                                   relaxed_oracle(np.array([[1, 0, 1, 0]], np.float32), labels).numpy())
    # A one-channel mask is thresholded, not arg-maxed over its single channel.
    mask = np.array([[[[0.7], [0.2]]]], np.float32)
    truth = np.array([[[[1.0], [1.0]]]], np.float32)
    np.testing.assert_allclose(oracles.get_oracle("discrete_pixel_accuracy")(mask, truth).numpy(), [0.5])


def test_discrete_oracles_are_refused_where_the_oracle_is_differentiated():
    from tfsp import config as config_lib
    from tfsp.build import build_method
    from tfsp.config import ConfigError
    from tfsp.spec import multilabel_spec

    config = config_lib.resolve("mlc", "spen", {"oracle": "discrete_f1"})
    with pytest.raises(ConfigError, match="piecewise constant.*spen"):
        build_method(config, multilabel_spec("toy", 4, 3), steps_per_epoch=2)
