"""The implicit trainer and its baselines: the implicit gradient against closed forms and finite
differences, each new method learning on synthetic correlated labels, and the launcher end to end."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import launch_in_process
from test_methods import chance_f1, method_config, synthetic_task
from tfsp import evaluation, experiment
from tfsp.methods import implicit_gradient


# ----- the implicit gradient -------------------------------------------------------------------
def quadratic_problem(seed=0, n=4, m=3):
    """L_aux = ½θᵀAθ − θᵀBφ (θ* = A⁻¹Bφ), L_prim = ½‖θ − c‖² + ½‖φ‖²·0.1."""
    rng = np.random.RandomState(seed)
    q = rng.randn(n, n)
    a = q @ q.T + n * np.eye(n)
    b, c, phi0 = rng.randn(n, m), rng.randn(n), rng.randn(m)
    theta_star = np.linalg.solve(a, b @ phi0)
    analytic = b.T @ np.linalg.solve(a, theta_star - c) + 0.1 * phi0
    theta = tf.Variable(theta_star)
    phi = tf.Variable(phi0)
    a_t, b_t, c_t = (tf.constant(v) for v in (a, b, c))

    def aux():
        return 0.5 * tf.tensordot(theta, tf.linalg.matvec(a_t, theta), 1) - tf.tensordot(
            theta, tf.linalg.matvec(b_t, phi), 1)

    def primary():
        return 0.5 * tf.reduce_sum(tf.square(theta - c_t)) + 0.05 * tf.reduce_sum(tf.square(phi))

    return aux, primary, theta, phi, analytic, 1.0 / np.linalg.eigvalsh(a).max()


def test_quadratic_implicit_gradient_converges_to_the_closed_form():
    aux, primary, theta, phi, analytic, alpha = quadratic_problem()
    errors = []
    for terms in (0, 5, 20, 80, 300):
        result = implicit_gradient(aux, primary, [theta], [phi], terms, alpha)
        errors.append(float(np.linalg.norm(result.total[0].numpy() - analytic)))
    assert all(later <= earlier + 1e-12 for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-6 * np.linalg.norm(analytic), errors
    # The direct term alone is ∂_φ L_prim = 0.1 φ.
    np.testing.assert_allclose(result.direct[0].numpy(), 0.1 * phi.numpy())


def test_implicit_gradient_matches_finite_differences_on_a_tiny_network():
    """θ: a logistic regression with L2 (strongly convex inner problem) plus λ·E_φ(σ(xθ)), a tiny
    energy whose weights are φ; L_prim: a hinge-free smooth loss of θ*(φ) and φ."""
    rng = np.random.RandomState(1)
    x = tf.constant(rng.randn(30, 4))
    y = tf.constant((rng.rand(30, 3) < 0.4).astype(np.float64))
    theta = tf.Variable(0.1 * rng.randn(4, 3))
    phi = tf.Variable(0.3 * rng.randn(3, 2))
    weight_decay, lam = 0.5, 0.1

    def aux():
        logits = tf.matmul(x, theta)
        y_hat = tf.sigmoid(logits)
        cross_entropy = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
        energy = tf.reduce_mean(tf.reduce_sum(tf.nn.softplus(tf.matmul(y_hat, phi)), axis=1))
        return cross_entropy + lam * energy + 0.5 * weight_decay * tf.reduce_sum(tf.square(theta))

    def primary():
        y_hat = tf.sigmoid(tf.matmul(x, theta))
        score = tf.reduce_sum(tf.matmul(y_hat, phi), axis=1) - tf.reduce_sum(tf.matmul(y, phi), axis=1)
        return tf.reduce_mean(tf.square(y_hat - y)) + tf.reduce_mean(tf.square(score)) * 0.1

    @tf.function
    def solve_inner(steps=tf.constant(3000)):
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = aux()
            theta.assign_sub(0.5 * tape.gradient(loss, theta))
        return loss

    solve_inner()
    phi0, theta0 = phi.numpy().copy(), theta.numpy().copy()
    result = implicit_gradient(aux, primary, [theta], [phi], 200, 0.5)

    eps = 1e-4
    numeric = np.zeros_like(phi0)
    for index in np.ndindex(*phi0.shape):
        values = []
        for sign in (1.0, -1.0):
            shifted = phi0.copy()
            shifted[index] += sign * eps
            phi.assign(shifted)
            theta.assign(theta0)
            solve_inner(tf.constant(1500))
            values.append(float(primary()))
        numeric[index] = (values[0] - values[1]) / (2 * eps)
    phi.assign(phi0)
    np.testing.assert_allclose(result.total[0].numpy(), numeric, rtol=2e-3, atol=1e-6)
    # The implicit term matters here: the direct term alone is measurably off.
    assert np.abs(result.direct[0].numpy() - numeric).max() > 10 * np.abs(result.total[0].numpy() - numeric).max()


# ----- the methods learn -----------------------------------------------------------------------
NEW_METHODS = [
    ("implicit", {"primary_loss": "ssvm"}),
    ("implicit", {"primary_loss": "cd"}),
    ("implicit", {"primary_loss": "dvn"}),
    ("implicit", {"primary_loss": "cd", "cd_refined_negatives": True}),
    ("spen", {"pretrain_epochs": 2}),
    ("infnet", {}),
]


@pytest.mark.parametrize("method,overrides", NEW_METHODS, ids=lambda v: str(v))
def test_new_method_learns(method, overrides):
    spec, train, test, y = synthetic_task()
    config = method_config(method, **overrides)
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(config, spec, steps_per_epoch=15)
    history = model.fit(train, epochs=6, verbose=0, shuffle=False)
    # The loss each method descends: the energy's hinge after pre-training for SPEN, the inner
    # cross-entropy of the inference net for the game / bi-level methods.
    curve = {"implicit": "inner_cross_entropy", "spen": "hinge", "infnet": "cross_entropy"}[method]
    losses = history.history[curve]
    first = 2 if method == "spen" else 0
    assert losses[-1] < losses[first], (curve, losses)
    metrics = evaluation.evaluate(model, test)
    chance = chance_f1(y[300:])
    assert metrics["example_f1"] > chance + 20, (metrics, chance)
    if method != "spen":
        assert metrics["inference_net_example_f1"] > chance + 20, (metrics, chance)
    if method == "implicit":
        assert {"inner_loss", "outer_loss", "grad_norm_direct", "grad_norm_implicit"} <= set(history.history)
        assert history.history["grad_norm_implicit"][-1] > 0
    outputs = model.predict(test, verbose=0)
    assert outputs["y"].shape == (100, 8)
    assert ((outputs["y"] >= 0) & (outputs["y"] <= 1)).all()


def test_unknown_primary_loss_is_an_error():
    spec, *_ = synthetic_task()
    with pytest.raises(ValueError, match="primary_loss.*ssvm"):
        experiment.build_method(method_config("implicit", primary_loss="nope"), spec, steps_per_epoch=2)


def test_cd_refined_negatives_are_the_test_time_refinement_of_a():
    """The extra cd negative is A_θ(x) refined on V as prediction refines it, and the loss is
    the softmax over y*, the K samples and that negative."""
    spec, train, _, _ = synthetic_task()
    model = experiment.build_method(method_config("implicit", primary_loss="cd", cd_refined_negatives=True,
                                                  cd_samples=3), spec, steps_per_epoch=2)
    raw_x, y_true = next(iter(train))
    x, y_true = model.prepare_inputs(raw_x), tf.cast(y_true, tf.float32)
    negatives = model.refined_negatives(x)
    np.testing.assert_allclose(negatives.numpy(), model.infer(raw_x)["y"].numpy(), atol=1e-6)
    batch = model.global_batch(x)
    noise = model.bernoulli_noise(x)
    y_a = spec.output_probabilities(model.inference_net(x))
    samples = tf.cast(noise < y_a[:, tf.newaxis], tf.float32)
    context = model.value_net.precompute(x)
    scores = tf.stack([model.value_net.score(context, y) for y in
                       [y_true, *tf.unstack(samples, axis=1), negatives]], axis=1)
    expected = tf.reduce_mean(tf.reduce_logsumexp(scores, axis=1) - scores[:, 0])
    expected += batch.penalty(model.value_net.losses)
    np.testing.assert_allclose(float(model.primary(x, y_true, batch, noise, negatives)), float(expected),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="cd_refined_negatives"):
        experiment.build_method(method_config("implicit", primary_loss="ssvm", cd_refined_negatives=True),
                                spec, steps_per_epoch=2)


# ----- the launcher ----------------------------------------------------------------------------
def test_launch_implicit_on_tiny_arff(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    proc = launch_in_process(
        "--task=mlc", "--method=implicit", "--primary_loss=cd",
        f"--arff={arff}", f"--xml={xml}", f"--model_dir={tmp_path / 'run'}",
        f"--results_dir={tmp_path / 'results'}", "--epochs=2", "--refine_steps=3",
        "--set", "implicit.neumann_terms=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "mlc-implicit-cd.json").read_text())
    assert record["variant"] == "cd" and record["config"]["settings"]["primary_loss"] == "cd"
    assert 0 <= record["metrics"]["example_f1"] <= 100
    assert 0 <= record["metrics_inference_net"]["example_f1"] <= 100
    tags = set()
    for path in (tmp_path / "run" / "logs").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_inner_loss", "epoch_outer_loss", "epoch_grad_norm_direct",
            "epoch_grad_norm_implicit"} <= tags, tags


def test_select_on_names_the_valid_metrics(tiny_mulan, tmp_path):
    from tfsp import config as config_lib

    arff, xml = tiny_mulan
    config = config_lib.resolve("mlc", "implicit", {"data": {"arff": str(arff), "xml": str(xml)}, "epochs": 1,
                                                    "select_on": "nope"})
    with pytest.raises(ValueError, match="inference_net_example_f1"):
        experiment.run(config, str(tmp_path / "run"), None, verbose=0)
    config.select_on = "example_f1, nope"
    with pytest.raises(ValueError, match="'nope' is not a metric"):
        experiment.run(config, str(tmp_path / "run2"), None, verbose=0)


def test_inner_steps_count_in_the_schedule_of_theta_and_not_in_pretraining():
    """θ's optimizer takes inner_steps updates per training step, so a decay at a run epoch
    falls at inner_steps times that many of its updates; pre-training counts training steps."""
    spec, _, _, _ = synthetic_task()
    config = method_config("implicit", primary_loss="ssvm", inner_steps=3, pretrain_epochs=1,
                           g_optimizer={"learning_rate": 1e-3, "decay_epochs": [1], "decay_factor": 0.5})
    model = experiment.build_method(config, spec, steps_per_epoch=15)
    assert model.optimizer_updates_at("g_optimizer", 15) == 45
    assert model.optimizer_updates_at("d_optimizer", 15) == 15
    assert model.pretrain_steps == 15
    model.d_optimizer.iterations.assign(14)
    model.g_optimizer.iterations.assign(42)  # 14 steps of 3 inner updates: still pre-training
    assert float(model.energy_weight_now()) == 0.0
    assert float(model.g_optimizer.learning_rate) == pytest.approx(1e-3)
    model.d_optimizer.iterations.assign(15)
    model.g_optimizer.iterations.assign(46)
    assert float(model.energy_weight_now()) == model.energy_weight
    assert float(model.g_optimizer.learning_rate) == pytest.approx(5e-4)
