"""Segmentation machinery: crop grid, joint inference, the conv networks and the methods on toy shapes."""

import copy
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfsp import config as config_lib
from tfsp import crops, evaluation, experiment
from tfsp.methods import DVN, DVNSettings
from tfsp.networks import ValueNetwork
from tfsp.refine import RefineConfig
from tfsp.spec import binary_segmentation_spec, multilabel_spec


def test_crop_grid_is_6x6_and_reassembles_exactly():
    offsets = crops.crop_offsets(32, 24, 6)
    assert len(offsets) == 36 and offsets[0] == (0, 0) and offsets[-1] == (8, 8)
    rng = np.random.RandomState(0)
    mask = (rng.rand(3, 32, 32, 1) > 0.5).astype(np.float32)
    patches = crops.extract_crops(tf.constant(mask), offsets, 24)
    assert patches.shape == (3 * 36, 24, 24, 1)
    np.testing.assert_array_equal(patches[37].numpy(), mask[1, 0:24, 2:26])  # example 1, crop (0, 2)
    np.testing.assert_allclose(crops.average_crops(patches, offsets, 32).numpy(), mask, atol=1e-6)
    assert crops.coverage(32, offsets, 24).min() >= 1


class LocalValue(ValueNetwork):
    """A value additive over pixels: -Σ_p (y_p - t(x_p))², t depending only on the pixel's own x."""

    def precompute(self, x, training=False):
        return tf.sigmoid(4.0 * (x[..., :1] - 0.5))

    def score(self, context, y, training=False):
        return -tf.reduce_sum(tf.square(y - context), axis=[1, 2, 3])


def test_joint_inference_equals_crop_averaging_for_an_additive_value():
    spec = binary_segmentation_spec("toy", 32, crop_size=24, crop_grid=6)
    x = tf.constant(np.random.RandomState(1).rand(2, 32, 32, 3).astype(np.float32))
    refine_config = RefineConfig(steps=5, step_size=0.1)
    outputs = {}
    for mode in ("average", "joint"):
        model = DVN(spec, value_net=LocalValue(), settings=DVNSettings(test_refine=refine_config), crop_mode=mode)
        # The value is the raw score here, so the step is the same in both modes.
        model.value_map = lambda context, training=False, net=None, m=model: (  # noqa: E731
            lambda y: (net or m.value_net).score(context, y))
        outputs[mode] = model.infer(x, return_trajectory=True)
    np.testing.assert_allclose(outputs["joint"]["y"].numpy(), outputs["average"]["y"].numpy(), atol=1e-5)
    np.testing.assert_allclose(outputs["joint"]["trajectory"].numpy(),
                               outputs["average"]["trajectory"].numpy(), atol=1e-5)
    assert outputs["joint"]["trajectory"].shape == (6, 2, 32, 32, 1)


def test_mirror_ascends_the_mean_value_of_the_two_mirror_views():
    from tfsp.networks import ConvValueNet

    spec = binary_segmentation_spec("toy", 24, crop_size=24, crop_grid=1)
    rng = np.random.RandomState(2)
    x = tf.constant(rng.rand(3, 24, 24, 3).astype(np.float32))
    y = tf.constant(rng.rand(3, 24, 24, 1).astype(np.float32))
    value_net = ConvValueNet(filters=(4, 8, 8), dense=(8, 4), activation="leaky_relu")
    model = DVN(spec, value_net=value_net, settings=DVNSettings(test_refine=RefineConfig(mirror=True)))
    both = model.value_of(x)(y).numpy()
    plain = tf.sigmoid(value_net((x, y))).numpy()
    mirrored = tf.sigmoid(value_net((x[:, :, ::-1], y[:, :, ::-1]))).numpy()
    assert not np.allclose(plain, mirrored)  # the net is not mirror-symmetric, so the test can fail
    np.testing.assert_allclose(both, 0.5 * (plain + mirrored), rtol=1e-5)
    model.set_test_settings(refine=RefineConfig())
    np.testing.assert_allclose(model.value_of(x)(y).numpy(), plain, rtol=1e-5)
    # Refinement and joint crop inference run on it.
    model.set_test_settings(refine=RefineConfig(steps=2, step_size=1.0, mirror=True), crop_mode="joint")
    assert model.infer(x)["y"].shape == (3, 24, 24, 1)


def test_dropout_samples_ascend_the_mean_over_dropout_masks():
    from tfsp.networks import ConvValueNet

    spec = binary_segmentation_spec("toy", 24, crop_size=24, crop_grid=1)
    rng = np.random.RandomState(3)
    x = tf.constant(rng.rand(3, 24, 24, 3).astype(np.float32))
    y = tf.constant(rng.rand(3, 24, 24, 1).astype(np.float32))
    value_net = ConvValueNet(filters=(4, 8, 8), dense=(16, 4), dropout=0.5, activation="leaky_relu")
    model = DVN(spec, value_net=value_net, settings=DVNSettings(test_refine=RefineConfig(dropout_samples=4)))
    plain = tf.sigmoid(value_net((x, y))).numpy()
    draws = [model.value_of(x)(y).numpy() for _ in range(2)]
    assert not np.allclose(draws[0], draws[1]) and not np.allclose(draws[0], plain)  # masks drawn anew
    # With one mask (p = 0.5) the value is a single subnetwork's; four average out part of the spread.
    model.set_test_settings(refine=RefineConfig(dropout_samples=1))
    one = np.stack([model.value_of(x)(y).numpy() for _ in range(40)])
    model.set_test_settings(refine=RefineConfig(dropout_samples=4))
    four = np.stack([model.value_of(x)(y).numpy() for _ in range(40)])
    assert four.std(0).mean() < 0.75 * one.std(0).mean()
    model.set_test_settings(refine=RefineConfig(steps=2, step_size=1.0, dropout_samples=2, mirror=True),
                            crop_mode="joint")
    assert np.all(np.isfinite(model.infer(x)["y"].numpy()))
    # Refused without dropout in D, and in training refinements; DVN's train_with_test_refine drops it.
    with pytest.raises(config_lib.ConfigError, match="dropout_samples=2 needs a value network with dropout"):
        DVN(spec, value_net=ConvValueNet(filters=(4, 8, 8), dense=(8, 4), dropout=0.0),
            settings=DVNSettings(test_refine=RefineConfig(dropout_samples=2))).value_of(x)
    with pytest.raises(config_lib.ConfigError, match="train_refine.dropout_samples=2: dropout_samples is a test-time option"):
        DVN(spec, value_net=value_net, settings=DVNSettings(train_refine=RefineConfig(dropout_samples=2)))
    model = DVN(spec, value_net=value_net, settings=DVNSettings(
        test_refine=RefineConfig(steps=2, dropout_samples=2), train_with_test_refine=True))
    assert model.train_refine.dropout_samples == 0


def test_mirror_needs_images():
    from tfsp.networks import MultiLabelEnergy
    from tfsp.spec import multilabel_spec

    spec = multilabel_spec("toy", 5, 4)
    model = DVN(spec, value_net=MultiLabelEnergy(4), settings=DVNSettings(test_refine=RefineConfig(mirror=True)))
    with pytest.raises(ValueError, match="mirror needs image inputs"):
        model.value_of(tf.zeros([2, 5]))


def test_mirror_is_refused_in_training_refinements():
    """Training tuples come from D on the training crop as it is: train_refine.mirror is refused,
    and DVN's train_with_test_refine takes the test refinement without its mirror."""
    spec = binary_segmentation_spec("toy", 32, crop_size=24, crop_grid=2)
    with pytest.raises(config_lib.ConfigError, match="train_refine.mirror=true: mirror is a test-time option"):
        DVN(spec, value_net=LocalValue(), settings=DVNSettings(train_refine=RefineConfig(mirror=True)))
    model = DVN(spec, value_net=LocalValue(), settings=DVNSettings(
        test_refine=RefineConfig(steps=2, mirror=True), train_with_test_refine=True))
    assert model.test_refine.mirror and not model.train_refine.mirror and model.train_refine.steps == 2


def ellipses(n, size=32, seed=0):
    """Bright random ellipses on noise: image [n, size, size, 3], mask [n, size, size, 1]."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images, masks = [], []
    for _ in range(n):
        cy, cx = rng.uniform(10, size - 10, 2)
        ry, rx = rng.uniform(5, 10, 2)
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        image = 0.35 * rng.rand(size, size, 3) + 0.45 * mask[..., None] + 0.1
        images.append(image)
        masks.append(mask[..., None])
    return np.array(images, np.float32), np.array(masks, np.float32)


def toy_task(method_overrides, method):
    from tfsp.data.images import segmentation_dataset

    images, masks = ellipses(96)
    spec = binary_segmentation_spec("toy", 32, crop_size=24, crop_grid=3)
    train = segmentation_dataset(images[:64], masks[:64], 16, training=True, crop_size=24, seed=0)
    test = segmentation_dataset(images[64:], masks[64:], 32, training=False, seed=0)
    own = {f.name for f in dataclasses.fields(config_lib.resolve("horses", method).settings)}
    # SMALL's optimizers: those this method has.
    config = config_lib.resolve("horses", method, {k: v for k, v in method_overrides.items()
                                                   if not k.endswith("optimizer") or k in own})
    config = dataclasses.replace(config, seed=0)
    return spec, train, test, config


SMALL = {"inference_net": {"filters": [8, 16, 16]}, "value_net": {"filters": [8, 16, 16], "dense": [32, 16]},
         "optimizer": {"learning_rate": 0.003}, "d_optimizer": {"learning_rate": 0.003},
         "g_optimizer": {"learning_rate": 0.003}}


@pytest.mark.parametrize("method,extra", [
    ("fcn", {}),
    ("dvn", {"train_refine": {"steps": 3, "step_size": 10.0, "normalize": True},
             "test_refine": {"steps": 5, "step_size": 10.0, "normalize": True}}),
    ("dvn", {"train_refine": {"steps": 3, "step_size": 10.0, "normalize": True},
             "test_refine": {"steps": 5, "step_size": 10.0, "normalize": True}, "crop_mode": "average"}),
    ("ldrsp", {"train_refine": {"steps": 2, "step_size": 1.0}, "test_refine": {"steps": 5, "step_size": 1.0},
               "adversarial": {"step_size": 1.0}, "crop_mode": "joint", "value_average": 0.9}),
])
def test_segmentation_methods_learn_toy_shapes(method, extra):
    spec, train, test, config = toy_task(config_lib.deep_update(copy.deepcopy(SMALL), extra), method)
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(config, spec, steps_per_epoch=4)
    history = model.fit(train, epochs=8, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    metrics = evaluation.evaluate(model, test)
    # All-foreground scores the mean foreground fraction (about 0.2); the methods must beat it clearly.
    assert metrics["mean_iou"] > 45, metrics
    assert 0 < metrics["global_iou"] <= 100
    if method != "fcn":
        by_mode = evaluation.crop_mode_metrics(model, test)
        assert set(by_mode) == {"average", "joint"}
        # The mode the model uses gives the metrics above; the other one is a fresh compile.
        assert by_mode[model.crop_mode]["mean_iou"] == pytest.approx(metrics["mean_iou"], abs=1e-3)
        assert evaluation.evaluate(model, test)["mean_iou"] == pytest.approx(metrics["mean_iou"], abs=1e-3)
        # The step curve's last step (and its step 0 for G alone) are the test metrics, so a
        # run with a step curve evaluates the test set once, not twice.
        curve = evaluation.step_curve(model, test, model.test_refine.steps)
        from_curve = evaluation.metrics_from_step_curve(model, curve)
        assert set(from_curve) == set(metrics), (from_curve, metrics)
        for name, value in metrics.items():
            assert from_curve[name] == pytest.approx(value, abs=1e-3), name
        if method == "ldrsp":
            # Steps selected on a validation set: the best of its step curve, then used.
            selected = evaluation.select_refine_steps(model, test)
            best = max(selected["validation_curve"]["mean_iou"])
            assert selected["configured"] == 5 and model.test_refine.steps == selected["chosen"]
            assert selected["validation_curve"]["mean_iou"][selected["chosen"]] == best
            assert evaluation.evaluate(model, test)["mean_iou"] == pytest.approx(best, abs=1e-3)
            # up_to widens the candidates beyond the configured steps (training validation keeps them).
            wider = evaluation.select_refine_steps(model, test, up_to=8)
            assert wider["validation_curve"]["step"] == list(range(9))
            assert wider["validation_curve"]["mean_iou"][wider["chosen"]] == max(wider["validation_curve"]["mean_iou"])
    outputs = model.predict(test, verbose=0)
    assert outputs["y"].shape == (32, 32, 32, 1)


def test_conv_value_net_activation_is_configurable():
    from tfsp.networks import ConvValueNet

    net = ConvValueNet(filters=(4, 4, 4), dense=(8, 4), activation="leaky_relu")
    x, y = tf.random.uniform((2, 8, 8, 3)), tf.random.uniform((2, 8, 8, 1))
    context = net.precompute(x)
    assert net.score(context, y).shape == (2,)
    assert net.get_config()["activation"] == "leaky_relu"
    # Leaky units pass gradient for negative inputs too: D's gradient w.r.t. y is never all zero.
    with tf.GradientTape() as tape:
        tape.watch(y)
        value = tf.reduce_sum(net.score(context, y))
    assert float(tf.reduce_max(tf.abs(tape.gradient(value, y)))) > 0


def toy_refining_model(crop_grid):
    """A DVN on 32x32 toy masks (24x24 crops, joint crop mode, 3 steps of 0.1), compiled, with
    images and a validation pipeline of six ellipses."""
    spec = binary_segmentation_spec("toy", 32, crop_size=24, crop_grid=crop_grid)
    images, masks = ellipses(6)
    validation = tf.data.Dataset.from_tensor_slices((images, masks)).batch(3)
    model = DVN(spec, value_net=LocalValue(), settings=DVNSettings(test_refine=RefineConfig(steps=3, step_size=0.1)),
                crop_mode="joint")
    model.compile(optimizer="adam")
    return model, images, validation


def test_crop_mode_chosen_on_validation_and_validation_crop_grid():
    """select_crop_mode keeps the mode with the better validation metric (ties: the configured
    one); test_settings(crop_grid=...) covers images with fewer crops and is restored after."""
    model, images, validation = toy_refining_model(crop_grid=6)
    chosen = evaluation.select_crop_mode(model, validation)
    assert set(chosen["validation"]) == {"average", "joint"} and chosen["configured"] == "joint"
    scores = {m: v["mean_iou"] for m, v in chosen["validation"].items()}
    assert model.crop_mode == chosen["chosen"] == max(scores, key=lambda m: (scores[m], m == "joint"))
    with model.test_settings(crop_grid=2):
        assert model.spec.crop_grid == 2
        assert model.infer(images[:1])["y"].shape == (1, 32, 32, 1)
    assert model.spec.crop_grid == 6


def test_mirror_chosen_on_validation_kept_for_the_weights_and_refused_without_images(tmp_path):
    """select_mirror keeps whichever of off / on refines to the better validation metric (ties:
    the configured one), the record's choice goes to chosen_test_settings.json and comes back
    from it, and a task without images refuses the option before training."""
    model, _, validation = toy_refining_model(crop_grid=2)
    chosen = evaluation.select_mirror(model, validation)
    assert chosen["configured"] is False and set(chosen["validation"]) == {"false", "true"}
    scores = {m: chosen["validation"][str(m).lower()]["mean_iou"] for m in (False, True)}
    assert model.test_refine.mirror == chosen["chosen"] == max(scores, key=lambda m: (scores[m], not m))
    assert model.test_refine.steps == 3  # only the mirror changed

    experiment.write_chosen_test_settings(tmp_path, {"mirror_selected": {"chosen": True},
                                                     "refine_steps_selected": {"chosen": 2}})
    model.set_test_settings(refine=RefineConfig(steps=3, step_size=0.1))
    assert experiment.apply_chosen_test_settings(model, tmp_path) == {"mirror": True, "refine_steps": 2}
    assert model.test_refine.mirror and model.test_refine.steps == 2

    mlc = config_lib.resolve("bibtex", "dvn", {"select_mirror": True})
    with pytest.raises(config_lib.ConfigError, match="select_mirror applies to image segmentation"):
        evaluation.check_test_selection(mlc, multilabel_spec("bibtex", num_features=5, num_labels=4))


def test_fold_channel_marks_each_example_constantly():
    from tfsp.datasets import with_fold_channel

    labels = np.random.RandomState(0).rand(5, 4, 4, 1).astype(np.float32)
    marked = with_fold_channel(labels, 2)
    assert marked.shape == (5, 4, 4, 2)
    np.testing.assert_array_equal(marked[..., :1], labels)
    np.testing.assert_array_equal(marked[:, :, :, 1].reshape(5, -1).min(1), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(marked[:, :, :, 1].reshape(5, -1).max(1), [0, 1, 0, 1, 0])


def test_ldrsp_heldout_folds_train_each_fold_network_outside_its_fold():
    from tfsp.data.images import segmentation_dataset
    from tfsp.datasets import with_fold_channel

    extra = {"train_refine": {"steps": 2, "step_size": 1.0}, "test_refine": {"steps": 2, "step_size": 1.0},
             "adversarial": {"step_size": 1.0}, "heldout_folds": 2, "refine_from_heldout": 0.5,
             "refine_from_zeros": 0.5, "g_pretrain_updates": 4, "d_warmup_updates": 2}
    spec, _, test, config = toy_task(config_lib.deep_update(copy.deepcopy(SMALL), extra), "ldrsp")
    assert experiment.training_folds(config) == 2
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(config, spec, steps_per_epoch=4)
    assert len(model.fold_nets) == 2
    images, masks = ellipses(16, seed=3)
    labels = with_fold_channel(masks, 2)
    # Every example in fold 0: fold network 0 must not learn from them, fold network 1 must.
    labels[..., 1] = 0.0
    train = segmentation_dataset(images, labels, 8, training=True, crop_size=24, seed=0)
    before = [[v.numpy().copy() for v in net.trainable_variables] for net in model.fold_nets]
    [schedule] = model.training_callbacks(steps_per_epoch=2)
    history = model.fit(train, epochs=4, verbose=0, shuffle=False, callbacks=[schedule])  # pretrain, warm-up, joint
    after = [[v.numpy() for v in net.trainable_variables] for net in model.fold_nets]
    assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0]))
    assert not all(np.array_equal(a, b) for a, b in zip(before[1], after[1]))
    assert np.isfinite(history.history["g_fold_cross_entropy"]).all()
    # After the pretraining epochs D regresses the held-out outputs too.
    assert history.history["oracle_heldout"][-1] > 0 and np.isfinite(history.history["d_heldout"][-1])
    # Held-out output: per example, the fold network that did not train on it.
    x = model.prepare_inputs(tf.constant(images[:4, :24, :24]))
    picked = model.heldout_output(x, tf.constant([0, 1, 1, 0]))
    np.testing.assert_allclose(picked[1].numpy(), tf.sigmoid(model.fold_nets[1](x[1:2]))[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(picked[0].numpy(), tf.sigmoid(model.fold_nets[0](x[:1]))[0].numpy(), atol=1e-6)
    # Evaluation labels have no fold channel.
    assert 0 <= evaluation.evaluate(model, test)["mean_iou"] <= 100


def test_heldout_folds_need_a_loader_that_makes_folds():
    from tfsp.config import ConfigError, DataConfig
    from tfsp.datasets import BUILDERS, FOLD_LOADERS, build_task_data, register_loader

    @register_loader("test_loader_without_folds")
    def build(config, seed):
        raise AssertionError("a loader without folds is not asked for them")

    try:
        with pytest.raises(ConfigError, match="cannot split its training examples into folds"):
            build_task_data(DataConfig(loader="test_loader_without_folds"), training_folds=2)
    finally:
        BUILDERS.pop("test_loader_without_folds")
    assert {"mulan", "horses", "lfw"} <= FOLD_LOADERS
    with pytest.raises(ConfigError, match="heldout_folds.*0 or at least 2"):
        config_lib.validate(config_lib.resolve("horses", "ldrsp", {"heldout_folds": 1}))
