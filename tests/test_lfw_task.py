"""The LFW Part Labels task: 3-class spec, builder, full-resolution scoring, launcher end to end.

Offline: the LFW tree (images, PPM labels, superpixel files) is written into tmp_path by
the loader tests' helper `_lfw_tree` (tests/test_images_data.py).
"""

import copy
import dataclasses
import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import launch_in_process
from tfsp import config as config_lib
from tfsp import experiment
from tfsp.config import DataConfig
from tfsp.data.errors import DataError
from tfsp.data.lfw import load_lfw_parts, superpixel_labels_from_pixels
from tfsp.datasets import build_task_data, lfw_test_metrics
from tfsp.spec import metric_sums, metric_values, multiclass_segmentation_spec
from test_images_data import _brute_superpixel_accuracy, _lfw_tree

SMALL = {"inference_net": {"filters": [4, 8, 8]}, "value_net": {"filters": [4, 8, 8], "dense": [16, 8]}}


def test_lfw_launch_end_to_end(tmp_path):
    # 40x40 stands in for LFW's 250x250 (the full-resolution metric keeps its name).
    lfw, _, _ = _lfw_tree(tmp_path / "data", size=40, superpixels=True)
    proc = launch_in_process(
        "--task=lfw", f"--data_dir={lfw}", "--epochs=1",
        f"--model_dir={tmp_path / 'run'}", f"--results_dir={tmp_path / 'results'}",
        "--set", "inference_net.filters=[4,8,8]", "--set", "value_net.filters=[4,8,8]",
        "--set", "test_refine.steps=2", "--set", "train_refine.steps=1", "--set", "data.crop_grid=2",
        "--set", "validation_every=1", "--set", "compare_crop_modes=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "lfw-ldrsp.json").read_text())
    assert record["sizes"] == {"train": 2, "validation": 1, "test": 1}
    assert "val_pixel_accuracy" in record["history"] and "val_inference_net_pixel_accuracy" in record["history"]
    for key in ("metrics", "metrics_inference_net"):
        assert set(record[key]) == {"pixel_accuracy", "pixel_accuracy_250", "superpixel_accuracy"}, record[key]
        assert all(0 <= v <= 100 for v in record[key].values()), record[key]
    assert "parts_train.txt" in record["split"] and "40x40" in record["split"]
    assert "metrics_by_crop_mode" not in record  # compare_crop_modes=false skips that test pass

    # --mode=probe: D's value vs the oracle for reference outputs, from the run's weights.
    probe = launch_in_process(
        "--task=lfw", f"--data_dir={lfw}", "--mode=probe",
        f"--model_dir={tmp_path / 'run'}", f"--results_dir={tmp_path / 'results'}", "--epochs=1",
        "--set", "inference_net.filters=[4,8,8]", "--set", "value_net.filters=[4,8,8]",
        "--set", "test_refine.steps=2", "--set", "train_refine.steps=1", "--set", "data.crop_grid=2",
        "--set", "validation_every=1", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr[-3000:]
    probed = json.loads((tmp_path / "results" / "lfw-ldrsp-probe.json").read_text())["probe"]
    assert set(probed) == {"ground_truth", "prediction", "zeros", "noise", "shifted_ground_truth",
                           "other_example_ground_truth", "start"}  # no all-ones output on the simplex
    assert probed["ground_truth"]["oracle"] == pytest.approx(1.0)
    assert all(0.0 <= entry["value"] <= 1.0 and 0.0 <= entry["oracle"] <= 1.0 for entry in probed.values())
    assert all(0.0 <= entry["below_ground_truth"] <= 1.0 for kind, entry in probed.items() if kind != "ground_truth")
    assert all(-1.0 <= probed["start"][name] <= 1.0 for name in ("gradient_cosine", "first_step_cosine"))

    # TensorBoard refinement images: colours of the 3 classes (red hair, green face, blue background).
    images = []
    for path in (tmp_path / "run" / "logs").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            images += [v for v in event.summary.value if v.tag == "refinement"]
    assert images, "no refinement image summary"
    png = tf.make_ndarray(images[0].tensor)[2]
    grid = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    truth = grid[:32, 32:64].reshape(-1, 3)  # first example, ground-truth column
    for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
        assert (truth == colour).all(axis=1).any(), colour


def bilinear_upsample(scores, height, width):
    """tf.image.resize(method="bilinear") by hand: half-pixel centres, edges clamped."""
    def axis(n_in, n_out):
        position = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        low = np.floor(position)
        return (np.clip(low, 0, n_in - 1).astype(int), np.clip(low + 1, 0, n_in - 1).astype(int),
                position - low)

    y0, y1, wy = axis(scores.shape[1], height)
    x0, x1, wx = axis(scores.shape[2], width)
    s = scores.astype(np.float64)
    rows = s[:, y0] * (1 - wy)[None, :, None, None] + s[:, y1] * wy[None, :, None, None]
    return rows[:, :, x0] * (1 - wx)[None, None, :, None] + rows[:, :, x1] * wx[None, None, :, None]


def test_full_resolution_eval_perfect_and_brute_force(tmp_path):
    lfw, _, _ = _lfw_tree(tmp_path, size=40, superpixels=True)
    # At the labels' own resolution a perfect prediction is exact: 100%.
    data = load_lfw_parts(lfw, size=40, split="all")
    data = dataclasses.replace(data, superpixel_labels=superpixel_labels_from_pixels(data.superpixels,
                                                                                      data.labels_full))
    perfect = np.eye(3, dtype=np.float32)[data.labels_full]
    assert lfw_test_metrics(data)(perfect) == {"pixel_accuracy_250": 100.0, "superpixel_accuracy": 100.0}

    # Random class probabilities at 32x32, scored at 40x40, against NumPy by hand.
    data = load_lfw_parts(lfw, size=32, split="all")
    rng = np.random.RandomState(0)
    scores = rng.dirichlet(np.ones(3), size=(4, 32, 32)).astype(np.float32)
    metrics = lfw_test_metrics(data)(scores)
    classes = bilinear_upsample(scores, 40, 40).argmax(axis=-1)
    assert metrics["pixel_accuracy_250"] == pytest.approx(100.0 * np.mean(classes == data.labels_full), abs=1e-9)
    assert metrics["superpixel_accuracy"] == pytest.approx(
        100.0 * _brute_superpixel_accuracy(classes, data.superpixels, data.superpixel_labels), abs=1e-9)
    # The working resolution's metrics, from the same predictions through the one metric routine:
    # the mean over images of per-image accuracy.
    spec = multiclass_segmentation_spec("lfw", 32, 3, None, 1)
    working = metric_values(spec, metric_sums(spec, tf.constant(scores), tf.constant(data.labels, tf.float32)))
    per_image = (scores.argmax(-1) == data.labels.argmax(-1)).mean(axis=(1, 2))
    assert float(working["pixel_accuracy"]) == pytest.approx(100.0 * per_image.mean(), abs=1e-4)

    # Without superpixel files: pixel accuracy only.
    plain = dataclasses.replace(data, superpixels=None, superpixel_labels=None)
    assert set(lfw_test_metrics(plain)(scores)) == {"pixel_accuracy_250"}


def test_build_lfw_splits_and_missing_data(tmp_path, monkeypatch):
    lfw, _, _ = _lfw_tree(tmp_path, size=40)
    data = build_task_data(DataConfig(loader="lfw", data_dir=str(lfw), batch_size=2, eval_batch_size=2))
    assert data.sizes == {"train": 2, "validation": 1, "test": 1}
    assert data.spec.output_shape == (32, 32, 3) and data.spec.projection == "simplex"
    assert data.spec.primary_metric == "pixel_accuracy" and data.spec.oracle == "per_position_f1"
    x, y = next(iter(data.train))
    assert x.shape == (2, 24, 24, 3) and y.shape == (2, 24, 24, 3)
    np.testing.assert_array_equal(tf.reduce_sum(y, -1), 1.0)
    x, y = next(iter(data.test))
    assert x.shape == (1, 32, 32, 3) and y.shape == (1, 32, 32, 3)
    assert sum(int(b[0].shape[0]) for b in data.train_and_validation) == 3
    assert data.test_metrics is not None
    monkeypatch.delenv("TFSP_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"--data_dir.*parts_lfw_funneled_gt_images.*vis-www"):
        build_task_data(DataConfig(loader="lfw"))


@pytest.mark.parametrize("method,crop_mode", [("dvn", "joint"), ("ldrsp", "average")])
def test_refined_three_class_outputs_stay_on_the_simplex(method, crop_mode):
    spec = multiclass_segmentation_spec("toy", 32, 3, crop_size=24, crop_grid=2)
    config = config_lib.resolve("lfw", method, config_lib.deep_update(
        copy.deepcopy(SMALL), {"crop_mode": crop_mode, "test_refine": {"steps": 5}}))
    tf.keras.utils.set_random_seed(0)
    model = experiment.build_method(config, spec, steps_per_epoch=1)
    x = tf.constant(np.random.RandomState(0).rand(2, 32, 32, 3).astype(np.float32))
    outputs = model.infer(x, return_trajectory=True)
    assert outputs["trajectory"].shape == (6, 2, 32, 32, 3)
    for y in (outputs["y"], outputs["trajectory"]):
        y = y.numpy()
        assert y.min() >= 0.0
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-5)
    # The refinement moved the output (away from the start: uniform for DVN, G(x) for LDRSP).
    assert np.abs(outputs["trajectory"][-1] - outputs["trajectory"][0]).max() > 1e-3
