"""TensorBoard: a tiny run's event files hold every loss term and metric (train and validation),
D's values and the oracle per kind of sample, the configuration as text and hparams; the
segmentation extras (sample values on crops, refinement images) on a toy model."""

from collections import defaultdict

import numpy as np
import tensorflow as tf

from tfsp import config as config_lib
from tfsp import experiment, summaries
from tfsp.spec import binary_segmentation_spec


def tags_by_run(log_dir):
    """{run folder relative to log_dir ("." for log_dir itself): {tag: plugin name}}."""
    tags = defaultdict(dict)
    for path in log_dir.rglob("events.out.tfevents.*"):
        run = str(path.parent.relative_to(log_dir))
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags[run][value.tag] = value.metadata.plugin_data.plugin_name
    return tags


def scalar_steps(run_dir, tag):
    """The steps at which the event files of one run (folder) hold scalar `tag`, in order."""
    return sorted(event.step for path in run_dir.glob("events.out.tfevents.*")
                  for event in tf.compat.v1.train.summary_iterator(str(path))
                  for value in event.summary.value if value.tag == tag)


def test_run_writes_losses_metrics_sample_values_and_config(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    config = config_lib.resolve("mlc", "dvn", {
        "data": {"arff": str(arff), "xml": str(xml), "validation_fraction": 0.2}, "epochs": 2,
        "train_refine": {"steps": 2}, "test_refine": {"steps": 2},
        "sample_weights": {"inference": 1.0, "adversarial": 1.0, "stratified": 1.0}})
    experiment.run(config, str(tmp_path / "run"), None, verbose=0)
    tags = tags_by_run(tmp_path / "run" / "logs")

    # Every loss term and training statistic, per epoch (keras.callbacks.TensorBoard).
    for name in ("loss", "loss_inference", "loss_adversarial", "loss_stratified", "oracle_inference",
                 "oracle_adversarial", "value_ground_truth", "value_inference"):
        assert f"epoch_{name}" in tags["train"], sorted(tags["train"])
    # Validation metrics, also against the number of training steps.
    assert "epoch_example_f1" in tags["validation"], sorted(tags["validation"])
    steps = scalar_steps(tmp_path / "run" / "logs" / "validation", "evaluation_example_f1_vs_iterations")
    assert len(steps) == 2 and steps[0] > 0 and steps[1] == 2 * steps[0], steps
    # D's values per kind of sample (histograms) and the oracle of each (scalars).
    for kind in ("ground_truth", "start", "prediction", "inference", "adversarial", "stratified"):
        assert tags["samples"][f"value/{kind}"] == "histograms", sorted(tags["samples"])
        assert f"oracle/{kind}" in tags["samples"]
    # The configuration as text and as hparams.
    assert tags["."]["config"] == "text"
    assert any(plugin == "hparams" for plugin in tags["."].values()), tags["."]


def test_two_optimizer_methods_plot_evaluations_against_training_steps(tiny_mulan, tmp_path):
    # Keras's TensorBoard callback takes the step from model.optimizer.iterations; LDRSP's steps
    # go through d_optimizer and g_optimizer, and every evaluation sat at step 0.
    arff, xml = tiny_mulan
    config = config_lib.resolve("mlc", "ldrsp", {
        "data": {"arff": str(arff), "xml": str(xml), "validation_fraction": 0.2}, "epochs": 2,
        "train_refine": {"steps": 1}, "test_refine": {"steps": 1}})
    record = experiment.run(config, str(tmp_path / "run"), None, verbose=0)
    logs = tmp_path / "run" / "logs"
    steps = scalar_steps(logs / "validation", "evaluation_example_f1_vs_iterations")
    assert len(steps) == 2 and steps[0] > 0 and steps[1] == 2 * steps[0], steps
    # Each optimizer's learning rate under its own name.
    assert scalar_steps(logs / "train", "epoch_learning_rate_d_optimizer") == [0, 1]
    assert scalar_steps(logs / "train", "epoch_learning_rate_g_optimizer") == [0, 1]
    assert record["history"]["loss"] and "epoch_learning_rate" not in tags_by_run(logs)["train"]


def test_flatten_config():
    flat = summaries.flatten_config({"a": {"b": 1, "c": [2, 3]}, "d": None, "e": "x", "f": True})
    assert flat == {"a.b": 1, "a.c": "[2, 3]", "d": "null", "e": "x", "f": True}


def test_segmentation_sample_values_and_refinement_images(tmp_path):
    spec = binary_segmentation_spec("toy", 32, crop_size=24, crop_grid=2)
    config = config_lib.resolve("horses", "ldrsp", {
        "inference_net": {"filters": [4, 8, 8]}, "value_net": {"filters": [4, 8, 8]},
        "train_refine": {"steps": 2}, "test_refine": {"steps": 3}})
    model = experiment.build_method(config, spec, steps_per_epoch=1)
    rng = np.random.RandomState(0)
    images = rng.rand(3, 32, 32, 3).astype(np.float32)
    masks = (rng.rand(3, 32, 32, 1) > 0.5).astype(np.float32)
    callbacks = [summaries.SampleValues(tmp_path, images[:, :24, :24], masks[:, :24, :24]),
                 summaries.RefinementImages(tmp_path, images, masks, every=1)]
    state = model.sampling_rng.state.numpy().copy()
    for callback in callbacks:
        callback.set_model(model)
        callback.on_epoch_end(0)
    np.testing.assert_array_equal(model.sampling_rng.state.numpy(), state)  # training's RNG untouched
    tags = tags_by_run(tmp_path)
    for kind in ("ground_truth", "inference_net", "prediction", "refined", "adversarial"):
        assert tags["samples"][f"value/{kind}"] == "histograms", sorted(tags["samples"])
    assert tags["images"]["refinement"] == "images"
