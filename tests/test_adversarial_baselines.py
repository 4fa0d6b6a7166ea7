"""The GAN-family baselines (tfsp.methods.gan_baselines) and LDRSP's ALEN ablations, offline on
tiny synthetic data: each baseline trains with finite losses, its D learns to tell y* from a fixed
G's outputs, the WGAN-GP penalty is the squared distance of a finite-difference gradient norm
from 1, and a short run of each through tfsp.launch writes a results JSON."""

import copy
import json

import numpy as np
import pytest
import tensorflow as tf

from test_methods import method_config, synthetic_task
from test_plugins import launched
from test_segmentation import SMALL, toy_task
from tfsp import config as config_lib
from tfsp import evaluation, experiment
from tfsp.methods.gan_baselines import gradient_penalty

BASELINES = ("gan", "lsgan", "wgan_gp", "ebgan")
NORMALIZED = {"normalize": True, "step_size": 0.2, "steps": 4}


def mean(values):
    return float(tf.reduce_mean(values))


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_trains_with_finite_losses_and_refines_on_its_value(method):
    spec, train, test, _ = synthetic_task()
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(method_config(method, test_refine=NORMALIZED), spec, steps_per_epoch=5)
    history = model.fit(train.take(5), epochs=2, verbose=0).history
    expected = {"loss", "d_loss", "d_real", "d_fake", "g_loss", "g_cross_entropy", "g_adversarial",
                "value_ground_truth", "value_inference_net", "oracle_inference_net"}
    if method == "wgan_gp":
        expected.add("d_gradient_penalty")
    assert set(history) == expected
    for name, values in history.items():
        assert np.isfinite(values).all(), (name, values)
    assert history["g_cross_entropy"][-1] < history["g_cross_entropy"][0]
    metrics = evaluation.evaluate(model, test)
    assert set(metrics) == {"example_f1", "inference_net_example_f1"}
    # Refinement starts at G(x) and ascends D's value (−E for EBGAN) in normalized steps.
    x, _ = next(iter(test))
    outputs = model.infer(x)
    value_fn = model.value_of(model.prepare_inputs(x))
    assert mean(value_fn(outputs["y"])) > mean(value_fn(outputs["y_inference_net"]))
    assert (outputs["y"].numpy() >= 0).all() and (outputs["y"].numpy() <= 1).all()


@pytest.mark.parametrize("method", BASELINES)
def test_discriminator_learns_to_tell_ground_truth_from_a_fixed_generator(method):
    spec, train, _, _ = synthetic_task()
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(method_config(method), spec, steps_per_epoch=5)
    x, y_true = next(iter(train))
    x, y_true = model.prepare_inputs(x), tf.cast(y_true, tf.float32)
    batch = model.global_batch(x)
    y_fake = model.generate_samples(x, y_true)["inference_net"]
    g_weights = [w.numpy() for w in model.inference_net.weights]
    step = tf.function(lambda: model.update_discriminator(x, y_true, y_fake, batch)[0])
    losses = [float(step()) for _ in range(30)]
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(g_weights, model.inference_net.weights))
    assert losses[-1] < losses[0] - 0.1, losses
    value_fn = model.value_of(x)
    assert mean(value_fn(y_true)) > mean(value_fn(y_fake))


def tiny_critic():
    """C(y) = vᵀ tanh(W y + b) + cᵀ y per example, in float64 so that finite differences are exact."""
    rng = np.random.RandomState(0)
    weights = [tf.Variable(rng.randn(4, 5)), tf.Variable(rng.randn(5)), tf.Variable(rng.randn(5)),
               tf.Variable(0.3 * rng.randn(4))]

    def critic(y):
        w, b, v, c = weights
        return tf.linalg.matvec(tf.tanh(y @ w + b), v) + tf.linalg.matvec(y, c)
    return critic, weights


def test_wgan_gradient_penalty_matches_a_finite_difference_gradient_norm():
    critic, weights = tiny_critic()
    y = tf.constant(np.random.RandomState(1).rand(3, 4))
    h = 1e-6
    gradient = np.stack([(critic(y + h * e) - critic(y - h * e)).numpy() / (2 * h)
                         for e in np.eye(4)[:, None, :]], axis=1)
    expected = (np.linalg.norm(gradient, axis=1) - 1.0) ** 2
    np.testing.assert_allclose(gradient_penalty(critic, y).numpy(), expected, rtol=1e-6)

    # The penalty is differentiable in the critic's weights (a second-order gradient), as D's update needs.
    w = weights[0]
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(gradient_penalty(critic, y))
    analytic = tape.gradient(total, w).numpy()[1, 2]

    def total_at(delta):
        w.assign_add([[0.0] * 5, [0, 0, delta, 0, 0], [0.0] * 5, [0.0] * 5])
        value = float(tf.reduce_sum(gradient_penalty(critic, y)))
        w.assign_sub([[0.0] * 5, [0, 0, delta, 0, 0], [0.0] * 5, [0.0] * 5])
        return value
    assert analytic == pytest.approx((total_at(h) - total_at(-h)) / (2 * h), rel=1e-5)


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_on_segmentation_with_the_patch_discriminator(method):
    """One logit per pixel (PatchDiscriminator), per-position losses averaged per example,
    and test-time crops: a few updates, finite losses, both predictions in [0, 1]."""
    extra = {"test_refine": {"steps": 2, "step_size": 1.0, "normalize": True},
             "value_net": {"kind": "patch", "filters": [8, 8, 8]}}
    spec, train, test, config = toy_task(config_lib.deep_update(copy.deepcopy(SMALL), extra), method)
    assert config.value_net.kind == "patch"
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(config, spec, steps_per_epoch=2)
    history = model.fit(train.take(2), epochs=1, verbose=0).history
    assert all(np.isfinite(values).all() for values in history.values()), history
    x, _ = next(iter(test))
    outputs = model.infer(x[:4])
    for kind in ("y", "y_inference_net"):
        assert outputs[kind].shape == (4, 32, 32, 1)
        assert (outputs[kind].numpy() >= 0).all() and (outputs[kind].numpy() <= 1).all()


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_follows_ldrsp_schedule(method):
    """LDRSP's schedule: G alone on cross-entropy for 10 updates, D alone on the frozen G for
    the next 10 (G's weights unchanged), then both."""
    spec, train, _, _ = synthetic_task()
    config = method_config(method, g_pretrain_updates=10, d_warmup_updates=10, test_refine=NORMALIZED)
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(config, spec, steps_per_epoch=5)
    callbacks = model.training_callbacks(steps_per_epoch=5)
    counts = lambda: (int(model.g_optimizer.iterations), int(model.d_optimizer.iterations))  # noqa: E731
    history = model.fit(train.take(5), epochs=2, verbose=0, callbacks=callbacks).history
    assert counts() == (10, 0) and model.training_phase == "pretrain"
    assert history["g_adversarial"] == [0.0, 0.0]
    g_weights = [w.numpy() for w in model.inference_net.weights]
    model.fit(train.take(5), initial_epoch=2, epochs=4, verbose=0, callbacks=callbacks)
    assert counts() == (10, 10) and model.training_phase == "warmup"
    for before, after in zip(g_weights, model.inference_net.weights):
        np.testing.assert_array_equal(before, after.numpy())
    model.fit(train.take(5), initial_epoch=4, epochs=5, verbose=0, callbacks=callbacks)
    assert counts() == (15, 15) and model.training_phase == "joint"


@pytest.mark.parametrize("method", BASELINES)
def test_horse_baselines_share_ldrsp_networks_refinement_and_budget(method):
    """The comparison the LDRSP paper makes: the baselines differ from LDRSP in their losses alone."""
    baseline, ldrsp = config_lib.resolve("horses", method), config_lib.resolve("horses", "ldrsp")
    assert baseline.value_net == ldrsp.value_net and baseline.inference_net == ldrsp.inference_net
    assert baseline.settings.d_optimizer == ldrsp.settings.d_optimizer
    assert baseline.settings.test_refine == ldrsp.settings.test_refine
    assert (baseline.updates, baseline.validation_crop_grid) == (ldrsp.updates, ldrsp.validation_crop_grid)
    assert (baseline.settings.g_pretrain_updates, baseline.settings.d_warmup_updates) == (
        ldrsp.settings.g_pretrain_updates, ldrsp.settings.d_warmup_updates)


def test_alen_ablations_are_ldrsp_configurations():
    aen = config_lib.resolve("bibtex", "aen")
    no_task_loss = config_lib.resolve("bibtex", "alen_no_task_loss")
    ldrsp = config_lib.resolve("bibtex", "ldrsp")
    assert aen.algorithm == no_task_loss.algorithm == "ldrsp"
    assert (aen.settings.inference_weight, aen.settings.adversarial_weight) == (0.0, 0.0)
    assert no_task_loss.settings.task_loss_weight == 0.0 and ldrsp.settings.task_loss_weight == 1.0
    assert no_task_loss.settings.test_refine == ldrsp.settings.test_refine
    assert aen.inference_net == ldrsp.inference_net == config_lib.resolve("bibtex", "feedforward").inference_net


def test_ldrsp_without_the_task_loss_trains_g_on_the_adversarial_term_alone():
    spec, train, _, _ = synthetic_task()
    config = method_config("ldrsp", task_loss_weight=0.0, generator_adversarial_weight=2.0,
                           inference_weight=0.0, adversarial_weight=0.0, test_refine=NORMALIZED)
    model = experiment.build_method(config, spec, steps_per_epoch=3)
    history = model.fit(train.take(3), epochs=1, verbose=0).history
    assert "d_refined" not in history and "d_adversarial" not in history  # AEN's D: y* and G(x) only
    assert history["g_cross_entropy"][0] > 0
    assert history["g_loss"][0] == pytest.approx(2.0 * history["g_adversarial"][0], rel=1e-5)


@pytest.mark.parametrize("method", [*BASELINES, "aen", "alen_no_task_loss"])
def test_a_short_run_through_the_launcher_writes_a_results_json(method, tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    select = method == "wgan_gp"  # the test-time step count chosen on validation, as for LDRSP
    small = ["--set=inference_net.hidden=[16]", "--set=value_net.hidden=[16]"]
    if method not in BASELINES:
        small.append("--set=train_refine.steps=1")
    assert launched("--task=mlc", f"--method={method}", f"--arff={arff}", f"--xml={xml}", "--epochs=1",
                    "--refine_steps=2", f"--model_dir={tmp_path / 'run'}", f"--results_dir={tmp_path / 'results'}",
                    *small, f"--set=select_refine_steps={str(select).lower()}", "--verbose=0") == 0
    record = json.loads((tmp_path / "results" / f"mlc-{method}.json").read_text())
    assert record["method"] == method
    for key in ("metrics", "metrics_inference_net"):
        assert 0 <= record[key]["example_f1"] <= 100, record[key]
    assert np.isfinite(record["history"]["d_loss"]).all() and np.isfinite(record["history"]["g_loss"]).all()
    if select:
        assert record["refine_steps_selected"]["configured"] == 2
