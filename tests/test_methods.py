"""Each method learns on synthetic correlated labels: its loss goes down and its F1 beats chance."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import correlated_multilabel
from tfsp import config as config_lib
from tfsp import evaluation, experiment, oracles
from tfsp.methods.tuples import ranking_loss, reference_samples, score_samples, trajectory_samples
from tfsp.spec import multilabel_spec


def synthetic_task(seed=0):
    x, y = correlated_multilabel(n=400, num_features=16, num_labels=8, seed=seed)
    spec = multilabel_spec("synthetic", 16, 8, feature_mean=x[:300].mean(0), feature_std=x[:300].std(0) + 1e-6)
    train = tf.data.Dataset.from_tensor_slices((x[:300], y[:300])).shuffle(300, seed=seed).batch(20)
    test = tf.data.Dataset.from_tensor_slices((x[300:], y[300:])).batch(100)
    return spec, train, test, y


def chance_f1(y, seed=0):
    rng = np.random.RandomState(seed)
    random = (rng.rand(*y.shape) < y.mean(0)).astype(np.float32)
    return 100 * float(np.mean(oracles.soft_f1(random, y).numpy()))


SMALL_SETTINGS = {"optimizer": {"name": "adam", "learning_rate": 0.01},
                  "d_optimizer": {"learning_rate": 0.01, "beta_1": 0.5},
                  "g_optimizer": {"learning_rate": 0.01, "beta_1": 0.5},
                  "test_refine": {"steps": 10, "step_size": 0.5}, "train_refine": {"steps": 5, "step_size": 0.5}}
"""Of these, each method takes those its settings have."""


def method_config(method, **overrides):
    config = config_lib.ExperimentConfig(task="synthetic", method=method, seed=0)
    config.value_net = config_lib.NetworkConfig(hidden=[32], num_pairwise=8)
    config.inference_net = config_lib.NetworkConfig(hidden=[32, 32])
    own = {f.name for f in dataclasses.fields(config.settings)}
    config_lib.merge_into(config, {k: v for k, v in SMALL_SETTINGS.items() if k in own}, "test")
    config_lib.merge_into(config, overrides, "test")
    return config


@pytest.mark.parametrize("method,overrides", [
    ("feedforward", {}),
    ("dvn", {}),
    ("dvn", {"sample_weights": {"inference": 1.0, "adversarial": 1.0, "ground_truth": 1.0,
                                "stratified": 1.0, "mismatched": 1.0}}),
    ("dvn", {"sample_weights": {"inference": 1.0, "adversarial": 1.0, "trajectory": 1.0},
             "inference_from_ground_truth": 0.5, "test_refine": {"best_iterate": True, "adam": True,
                                                                  "step_size": 0.1},
             "train_with_test_refine": True, "adversarial": {"steps": 3, "best_iterate": True}}),
    ("ldrsp", {"test_refine": {"normalize": True, "step_size": 0.2},
               "train_refine": {"normalize": True, "step_size": 0.2},
               "adversarial": {"normalize": True, "step_size": 0.2}}),
    ("ldrsp", {"test_refine": {"normalize": True, "step_size": 0.2},
               "train_refine": {"normalize": True, "step_size": 0.2},
               "adversarial": {"normalize": True, "step_size": 0.2},
               "extra_sample_weights": {"stratified": 0.5, "mismatched": 0.5}, "trajectory_weight": 0.5,
               "refine_from_zeros": 0.5}),
    ("ldrsp", {"test_refine": {"normalize": True, "step_size": 0.2},
               "train_refine": {"normalize": True, "step_size": 0.2},
               "adversarial": {"normalize": True, "step_size": 0.2}, "value_loss": "cross_entropy"}),
])
def test_method_learns(method, overrides):
    spec, train, test, y = synthetic_task()
    config = method_config(method, **overrides)
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(config, spec, steps_per_epoch=15)
    history = model.fit(train, epochs=6, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    metrics = evaluation.evaluate(model, test)
    assert metrics["example_f1"] > chance_f1(y[300:]) + 20, (metrics, chance_f1(y[300:]))
    outputs = model.predict(test, verbose=0)
    assert outputs["y"].shape == (100, 8)
    assert ((outputs["y"] >= 0) & (outputs["y"] <= 1)).all()
    np.testing.assert_array_equal(outputs["labels"], (outputs["y"] >= 0.5).astype(np.float32))
    if method == "ldrsp":
        assert "inference_net_example_f1" in metrics
        assert set(history.history) >= {"d_loss", "g_loss", "d_ground_truth", "d_refined",
                                        "d_adversarial", "oracle_refined", "g_adversarial"}
        if "trajectory_weight" in overrides:
            assert np.isfinite(history.history["d_trajectory"]).all()


def test_ldrsp_value_losses_and_their_gradients_where_the_sigmoid_saturates():
    from tfsp.methods.ldrsp import value_regression_loss
    scores = tf.constant([[8.0, -1.0], [0.5, 2.0]])
    target = tf.constant([[0.0, 0.3], [1.0, 0.7]])
    squared = value_regression_loss("squared_error", scores, target)
    np.testing.assert_allclose(squared, 0.5 * (tf.sigmoid(scores) - target) ** 2, rtol=1e-6)
    np.testing.assert_allclose(value_regression_loss("cross_entropy", scores, target),
                               -(target * tf.math.log(tf.sigmoid(scores))
                                 + (1 - target) * tf.math.log(1 - tf.sigmoid(scores))), rtol=1e-4)
    # A per-example target broadcasts over a patch discriminator's per-position scores.
    assert value_regression_loss("cross_entropy", scores, tf.constant([[1.0], [0.0]])).shape == (2, 2)
    # D valuing a bad output (v* = 0) at sigmoid(8) ≈ 1: the squared error's gradient has all but
    # vanished (≈ 3e-4), the cross-entropy's is sigmoid(8) − 0 ≈ 1.
    bad = tf.Variable([8.0])
    for kind, least, most in (("squared_error", 0.0, 1e-3), ("cross_entropy", 0.99, 1.0)):
        with tf.GradientTape() as tape:
            loss = value_regression_loss(kind, bad, 0.0)
        assert least <= float(tape.gradient(loss, bad)[0]) <= most, kind
    with pytest.raises(config_lib.ConfigError, match="value_loss"):
        config_lib.validate(method_config("ldrsp", value_loss="hinge"))


def test_dvn_refinement_improves_its_own_value():
    spec, train, test, _ = synthetic_task()
    model = experiment.build_method(method_config("dvn"), spec, steps_per_epoch=15)
    model.fit(train, epochs=3, verbose=0)
    x, _ = next(iter(test))
    outputs = model.infer(x, return_trajectory=True)
    trajectory = outputs["trajectory"]
    assert trajectory.shape[0] == 11
    context = model.value_net.precompute(model.prepare_inputs(x))
    value = model.value_map(context)
    assert float(tf.reduce_mean(value(trajectory[-1]))) > float(tf.reduce_mean(value(trajectory[0])))


def test_trajectory_samples_pick_one_iterate_of_each_examples_path():
    spec, _, _, _ = synthetic_task()
    model = experiment.build_method(method_config("ldrsp", trajectory_weight=1.0), spec, steps_per_epoch=1)
    steps, batch = 5, 64
    # Iterate t of example b is the constant 100·b + t, so a pick names its example and step.
    path = tf.constant([[[100.0 * b + t] * 3 for b in range(batch)] for t in range(steps + 1)])
    picked = trajectory_samples(model, path).numpy()
    assert picked.shape == (batch, 3)
    assert (picked == picked[:, :1]).all()
    example, step = np.divmod(picked[:, 0].astype(int), 100)
    np.testing.assert_array_equal(example, np.arange(batch))
    assert set(step) <= set(range(steps + 1)) and len(set(step)) > 3  # drawn, not fixed


def test_reference_samples_are_made_from_the_ground_truth_alone():
    spec, _, _, y = synthetic_task()
    model = experiment.build_method(method_config("ldrsp", extra_sample_weights={"mismatched": 1.0}),
                                    spec, steps_per_epoch=1)
    y_true = tf.constant(y[:4], tf.float32)
    samples = reference_samples(model, ["mismatched", "ground_truth"], y_true)
    assert list(samples) == ["ground_truth", "mismatched"]  # a fixed order, whatever was asked
    np.testing.assert_array_equal(samples["mismatched"].numpy(), np.roll(y[:4], 1, axis=0))
    np.testing.assert_array_equal(samples["ground_truth"].numpy(), y[:4])
    with pytest.raises(ValueError, match="unknown LDRSP extra sample kinds"):
        experiment.build_method(method_config("ldrsp", extra_sample_weights={"inference": 1.0}),
                                spec, steps_per_epoch=1)


@pytest.mark.parametrize("network", ["multilabel", "patch"])
def test_score_samples_stacks_the_kinds_into_one_pass_with_each_kinds_own_logits(network):
    from tfsp.networks import MultiLabelEnergy, PatchDiscriminator
    rng = np.random.RandomState(0)
    if network == "multilabel":
        net, x, shape = MultiLabelEnergy(num_labels=5, hidden=(8,), num_pairwise=4), rng.rand(3, 7), (3, 5)
    else:
        net, x, shape = PatchDiscriminator(filters=(4, 8, 8)), rng.rand(3, 8, 8, 3), (3, 8, 8, 1)
    context = net.precompute(tf.constant(x, tf.float32))
    samples = {kind: tf.constant(rng.rand(*shape), tf.float32) for kind in ("a", "b", "c")}
    stacked = score_samples(net, context, samples)
    assert list(stacked) == ["a", "b", "c"]
    for kind, y in samples.items():
        np.testing.assert_allclose(stacked[kind].numpy(), net.score(context, y).numpy(), rtol=1e-5, atol=1e-6)


def test_ranking_loss_is_a_margin_hinge_over_each_examples_ordered_pairs():
    scores = {"ground_truth": tf.constant([3.0, 0.0]), "a": tf.constant([2.0, 1.0]), "b": tf.constant([0.5, 1.0])}
    targets = {"a": tf.constant([0.8, 0.5]), "b": tf.constant([0.5, 0.5])}
    loss = ranking_loss(scores, targets, margin=5.0).numpy()
    # Example 0: (gt, a) max(0, 1.0 − 1.0) = 0, (gt, b) max(0, 2.5 − 2.5) = 0, (a, b) max(0, 1.5 − 1.5) = 0.
    # Example 1: (gt, a) and (gt, b) max(0, 2.5 − (−1)) = 3.5 each; a and b tie, so no pair.
    np.testing.assert_allclose(loss, [0.0, 3.5], atol=1e-6)
    # A patch D's per-position scores are averaged per example; per-example targets broadcast.
    patch = {"ground_truth": tf.fill([2, 3, 3, 1], 1.0), "a": tf.fill([2, 3, 3, 1], 2.0)}
    targets = {"a": tf.reshape([0.9, 1.0], [2, 1, 1, 1])}
    np.testing.assert_allclose(ranking_loss(patch, targets, margin=10.0).numpy(),
                               [2.0, 0.0], atol=1e-5)


def test_ldrsp_with_the_ranking_term_trains_and_tracks_it():
    spec, train, _, _ = synthetic_task()
    model = experiment.build_method(method_config("ldrsp", ranking_weight=1.0), spec, steps_per_epoch=15)
    history = model.fit(train, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["d_ranking"])) and history["d_ranking"][-1] > 0
    with pytest.raises(config_lib.ConfigError, match="ranking_margin"):
        config_lib.validate(method_config("ldrsp", ranking_margin=0.0))


def test_ldrsp_schedule_switches_phases_at_the_configured_update_counts():
    """G alone for 20 updates, D alone for the next 25, then both: each optimizer counts
    exactly the updates of its phases, and its learning rate decays at the run's epochs
    (decay_epochs), not at that many of its own updates."""
    spec, train, _, _ = synthetic_task()
    config = method_config("ldrsp", g_pretrain_updates=20, d_warmup_updates=25, noisy_weight=0.5,
                           test_refine={"normalize": True, "step_size": 0.2},
                           train_refine={"normalize": True, "step_size": 0.2, "steps": 2},
                           adversarial={"normalize": True, "step_size": 0.2},
                           # Run updates 45 and 30: G's 20th and D's 10th update.
                           g_optimizer={"learning_rate": 1e-3, "decay_epochs": [3], "decay_factor": 0.5},
                           d_optimizer={"learning_rate": 1e-3, "decay_epochs": [2], "decay_factor": 0.5})
    model = experiment.build_method(config, spec, steps_per_epoch=15)
    [schedule] = model.training_callbacks(steps_per_epoch=15)
    assert [schedule.phase_at(u) for u in (0, 19, 20, 44, 45, 1000)] == [
        "pretrain", "pretrain", "warmup", "warmup", "joint", "joint"]
    run_updates = (0, 15, 20, 30, 44, 45, 60)
    assert [model.optimizer_updates_at("g_optimizer", u) for u in run_updates] == [0, 15, 20, 20, 20, 20, 35]
    assert [model.optimizer_updates_at("d_optimizer", u) for u in run_updates] == [0, 0, 0, 10, 24, 25, 40]

    rates = []

    class LearningRates(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rates.append((float(model.g_optimizer.learning_rate), float(model.d_optimizer.learning_rate)))

    history = model.fit(train, epochs=4, verbose=0, shuffle=False, callbacks=[schedule, LearningRates()])  # 60 updates
    assert int(model.g_optimizer.iterations.numpy()) == 20 + 15
    assert int(model.d_optimizer.iterations.numpy()) == 25 + 15
    assert model.training_phase == "joint"
    assert all(np.isfinite(history.history["d_noisy_inference_net"]))
    # The rate each optimizer applies at run update u (counted from 0); PiecewiseConstantDecay
    # switches after its boundary, so the update after it is the first at the lower rate.
    g_rates, d_rates = zip(*rates)
    assert g_rates[20] == g_rates[45] == pytest.approx(1e-3) and g_rates[46] == pytest.approx(5e-4)
    assert d_rates[30] == pytest.approx(1e-3) and d_rates[31] == pytest.approx(5e-4)


@pytest.mark.parametrize("method", ["ldrsp", "dvn"])
def test_value_average_is_a_moving_average_of_the_value_net_and_prediction_ascends_it(method):
    """value_average = 0.9: after D's update n (from 1) the average is decay·average + (1 − decay)·D
    with decay = min(0.9, n / (9 + n)) (0 at the first update: a copy), and refinement at
    prediction ascends the average while training tuples keep coming from D."""
    spec, train, test, _ = synthetic_task()
    config = method_config(method, value_average=0.9)
    model = experiment.build_method(config, spec, steps_per_epoch=15)
    for average, weight in zip(model.value_net_average.get_weights(), model.value_net.get_weights()):
        np.testing.assert_array_equal(average, weight)  # built as a copy
    seen = []

    class ValueNetWeights(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append([np.float64(w) for w in model.value_net.get_weights()])

    model.fit(train, epochs=1, verbose=0, shuffle=False, callbacks=[ValueNetWeights()])
    expected = seen[0]
    for n, weights in enumerate(seen[1:], start=2):
        decay = min(0.9, (n - 1 + 1.0) / (n - 1 + 10.0))
        expected = [decay * a + (1 - decay) * w for a, w in zip(expected, weights)]
    for average, value in zip(model.value_net_average.get_weights(), expected):
        np.testing.assert_allclose(average, value, rtol=1e-4, atol=1e-6)
    assert not all(np.allclose(a, w) for a, w in zip(model.value_net_average.get_weights(),
                                                      model.value_net.get_weights()))
    x, _ = next(iter(test))
    x = model.prepare_inputs(x)
    y = tf.fill([x.shape[0], 8], 0.5)
    predicted = model.value_of(x)(y)
    averaged = tf.sigmoid(model.value_net_average.score(model.value_net_average.precompute(x), y))
    np.testing.assert_allclose(predicted, averaged, rtol=1e-5)
    with pytest.raises(config_lib.ConfigError, match="value_average"):
        config_lib.validate(method_config(method, value_average=1.0))


def test_phase_schedule_is_refused_by_a_method_without_phases():
    with pytest.raises(config_lib.ConfigError, match="test: unknown key 'g_pretrain_updates' in "
                                                     "ExperimentConfig or DVNSettings"):
        method_config("dvn", g_pretrain_updates=5)
    assert method_config("ldrsp").settings.g_pretrain_updates == 0


def test_value_check_trains_the_value_net_alone_and_scores_rankings():
    from tfsp import value_check

    spec, train, test, _ = synthetic_task()
    config = method_config("dvn", optimizer={"learning_rate": 0.01})
    model = experiment.build_method(config, spec, steps_per_epoch=15)
    record = value_check.check_value_network(model, train, test, updates=60)
    assert record["updates"] == 60 and record["loss_first_last"][1] < record["loss_first_last"][0]
    ranked = record["ground_truth_ranked_above"]
    assert set(ranked) == {"other_example_ground_truth", "zeros", "ones", "noise", "blurred_noise"}
    assert ranked["zeros"] > 0.9 and ranked["noise"] > 0.9, ranked
    assert -1 <= record["refinement"]["spearman_value_vs_oracle_all_iterates"] <= 1
