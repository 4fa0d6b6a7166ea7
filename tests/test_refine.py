import numpy as np
import pytest
import tensorflow as tf

from tfsp.refine import RefineConfig, compiled_refine, project_to_simplex, refine


def concave_value(target):
    target = tf.constant(target, tf.float32)
    return lambda y: -tf.reduce_sum(tf.square(y - target), axis=-1)


def test_refinement_reaches_the_optimum_of_a_concave_value():
    # Optimum inside the box for example 0, outside (so on the boundary after projection) for example 1.
    target = np.array([[0.2, 0.7, 0.5], [1.5, -0.3, 0.4]], np.float32)
    result = refine(concave_value(target), tf.zeros((2, 3)), RefineConfig(steps=100, step_size=0.1))
    np.testing.assert_allclose(result.y.numpy(), np.clip(target, 0, 1), atol=1e-4)


def test_compiled_equals_eager_and_trajectory_shape():
    target = np.random.RandomState(0).rand(4, 5).astype(np.float32)
    config = RefineConfig(steps=7, step_size=0.3, normalize=True)
    eager = refine(concave_value(target), tf.zeros((4, 5)), config, return_trajectory=True)
    value_fn = concave_value(target)
    compiled = compiled_refine()(value_fn, tf.zeros((4, 5)), config, True)
    np.testing.assert_allclose(eager.y.numpy(), compiled.y.numpy(), atol=1e-6)
    assert compiled.trajectory.shape == (8, 4, 5)
    np.testing.assert_allclose(compiled.trajectory[-1].numpy(), compiled.y.numpy())
    np.testing.assert_allclose(compiled.trajectory[0].numpy(), 0.0)


def test_normalized_steps_have_length_eta():
    value_fn = lambda y: tf.reduce_sum(y * tf.constant([[3.0, 4.0]]), axis=-1)  # noqa: E731
    result = refine(value_fn, tf.zeros((1, 2)), RefineConfig(steps=1, step_size=0.5, normalize=True,
                                                             projection="none"))
    np.testing.assert_allclose(result.y.numpy(), [[0.3, 0.4]], atol=1e-6)


def test_early_stop_on_tolerance_pads_trajectory():
    target = np.array([[0.5, 0.5]], np.float32)
    config = RefineConfig(steps=50, step_size=0.5, tolerance=1e-3)
    result = refine(concave_value(target), tf.zeros((1, 2)), config, return_trajectory=True)
    assert int(result.steps_taken) < 50
    np.testing.assert_allclose(result.trajectory[-1].numpy(), result.y.numpy())


def simplex_reference(v):
    """Brute force: the nearest point over all supports (KKT), for small dimension."""
    import itertools
    best, best_dist = None, np.inf
    n = len(v)
    for k in range(1, n + 1):
        for support in itertools.combinations(range(n), k):
            s = list(support)
            theta = (v[s].sum() - 1) / k
            w = np.zeros(n)
            w[s] = v[s] - theta
            if (w[s] >= -1e-12).all():
                d = ((w - v) ** 2).sum()
                if d < best_dist:
                    best, best_dist = w, d
    return best


def test_simplex_projection_matches_bruteforce():
    rng = np.random.RandomState(3)
    v = (rng.randn(50, 2, 4) * 2).astype(np.float32)
    w = project_to_simplex(tf.constant(v)).numpy()
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    for idx in np.ndindex(50, 2):
        np.testing.assert_allclose(w[idx], simplex_reference(v[idx].astype(np.float64)), atol=1e-5)


def test_simplex_projection_keeps_points_of_the_simplex():
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(project_to_simplex(tf.constant(p)).numpy(), p, atol=1e-6)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="projection"):
        RefineConfig(projection="ball")


@pytest.mark.parametrize("rule", [dict(adam=True, step_size=0.05), dict(normalize=True, step_size=0.2, decay=0.5),
                                  dict(step_size=0.1, decay=0.01)])
def test_each_step_rule_reaches_the_optimum_of_a_concave_value(rule):
    # Optima inside the box: a normalized step is dominated by the clipped coordinates' gradient.
    target = np.array([[0.2, 0.7, 0.5], [0.9, 0.05, 0.4]], np.float32)
    result = refine(concave_value(target), tf.zeros((2, 3)), RefineConfig(steps=300, **rule))
    np.testing.assert_allclose(result.y.numpy(), np.clip(target, 0, 1), atol=2e-2)


def test_best_iterate_is_never_worse_than_the_last_and_its_trajectory_is_monotone():
    # Normalized steps of fixed length overshoot and oscillate around the optimum.
    target = np.random.RandomState(1).rand(6, 4).astype(np.float32)
    value_fn = concave_value(target)
    last = refine(value_fn, tf.zeros((6, 4)), RefineConfig(steps=25, step_size=0.37, normalize=True))
    best = refine(value_fn, tf.zeros((6, 4)), RefineConfig(steps=25, step_size=0.37, normalize=True,
                                                           best_iterate=True), return_trajectory=True)
    assert np.all(best.values.numpy() >= last.values.numpy() - 1e-6)
    assert np.any(best.values.numpy() > last.values.numpy() + 1e-4)
    np.testing.assert_allclose(best.values.numpy(), value_fn(best.y).numpy(), rtol=1e-6)
    # Entry k is what k steps return: its value never falls along the trajectory.
    values = np.stack([value_fn(y).numpy() for y in best.trajectory])
    assert best.trajectory.shape == (26, 6, 4)
    assert np.all(np.diff(values, axis=0) >= -1e-6)
    np.testing.assert_allclose(best.trajectory[-1].numpy(), best.y.numpy())
    np.testing.assert_allclose(best.trajectory[0].numpy(), 0.0)


def test_best_iterate_compiled_with_early_stop():
    target = np.array([[0.5, 0.5]], np.float32)
    config = RefineConfig(steps=50, step_size=0.5, tolerance=1e-3, best_iterate=True, adam=True)
    result = compiled_refine()(concave_value(target), tf.zeros((1, 2)), config, True)
    assert result.trajectory.shape == (51, 1, 2)
    np.testing.assert_allclose(result.trajectory[-1].numpy(), result.y.numpy())


def test_adam_and_normalize_are_exclusive():
    with pytest.raises(ValueError, match="one step rule"):
        RefineConfig(adam=True, normalize=True)


def test_entropic_step_is_the_exponentiated_gradient_step_on_the_simplex_and_in_the_box():
    # A linear value: the gradient is the constant c, so one step is closed-form.
    c = np.array([[[1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]], np.float32)
    value_fn = lambda y: tf.reduce_sum(y * c, axis=[1, 2])  # noqa: E731
    y0 = np.array([[[1 / 3, 1 / 3, 1 / 3], [0.98, 0.01, 0.01]]], np.float32)
    result = refine(value_fn, tf.constant(y0), RefineConfig(steps=1, step_size=0.5, entropic=True,
                                                            projection="simplex"))
    expected = y0 * np.exp(0.5 * c)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(result.y.numpy(), expected, rtol=1e-5)
    # The uncertain position moves far more than the confident one, though their gradients are equal.
    moved = np.abs(result.y.numpy() - y0).sum(-1)[0]
    assert moved[0] > 10 * moved[1]

    box = np.array([[0.5, 0.99, 0.0]], np.float32)
    g = np.array([[2.0, 2.0, 2.0]], np.float32)
    result = refine(lambda y: tf.reduce_sum(y * g, axis=-1), tf.constant(box),
                    RefineConfig(steps=1, step_size=0.25, entropic=True, projection="clip"))
    floored = np.clip(box, 1e-6, 1 - 1e-6)
    expected = 1 / (1 + np.exp(-(np.log(floored / (1 - floored)) + 0.25 * g)))
    np.testing.assert_allclose(result.y.numpy(), expected, rtol=1e-5)


def test_entropic_steps_reach_the_optimum_of_a_concave_value_inside_the_simplex():
    target = np.array([[0.2, 0.5, 0.3]], np.float32)
    result = refine(concave_value(target), tf.constant([[0.6, 0.2, 0.2]]),
                    RefineConfig(steps=200, step_size=0.5, entropic=True, projection="simplex"))
    np.testing.assert_allclose(result.y.numpy(), target, atol=1e-3)


def test_entropic_is_refused_with_adam_or_without_a_bounded_feasible_set():
    with pytest.raises(ValueError, match="choose one"):
        RefineConfig(entropic=True, adam=True)
    with pytest.raises(ValueError, match="projection clip or simplex"):
        RefineConfig(entropic=True, projection="none")


def test_entropic_is_set_from_the_command_line_for_one_refinement_only():
    from tfsp import config as config_lib

    cfg = config_lib.resolve("bibtex", "ldrsp", config_lib.parse_assignments(
        ["test_refine.entropic=true", "test_refine.step_size=5"]))
    assert cfg.settings.test_refine.entropic and cfg.settings.test_refine.step_size == 5.0
    assert not cfg.settings.train_refine.entropic
