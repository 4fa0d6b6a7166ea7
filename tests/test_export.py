"""SavedModel export: versioned, loadable in a fresh process with the same predictions, named
signatures for saved_model_cli / TF Serving, clear errors for inputs of the wrong shape or dtype;
the launcher run that exports prints no TensorFlow start-up or checkpoint chatter."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_concurrently
from tfsp import config as config_lib
from tfsp import experiment, export
from tfsp.spec import multiclass_segmentation_spec

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
# The launcher as a user starts it: TF_CPP_MIN_LOG_LEVEL unset (conftest sets it for this process).
LAUNCH_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
# TensorFlow's start-up lines (twice: from two native libraries), the cuInit error of a machine
# without CUDA, and the INFO lines of checkpoint and SavedModel writing.
TENSORFLOW_CHATTER = re.compile(r"cuInit|oneDNN|cuda drivers|absl::InitializeLog|cpu_feature_guard|"
                                r"Sharding callback|fingerprint|Assets written|signature_serialization")

# A fresh interpreter: loads each SavedModel with TensorFlow alone (no tfsp) and runs one signature.
SERVE = """
import sys, numpy as np, tensorflow as tf
signature, name, inputs, *dirs_and_outputs = sys.argv[1:]
x = tf.constant(np.load(inputs))
for export_dir, outputs in zip(dirs_and_outputs[::2], dirs_and_outputs[1::2]):
    result = tf.saved_model.load(export_dir).signatures[signature](**{name: x})
    np.savez(outputs, **{k: v.numpy() for k, v in result.items()})
"""
# tfsp not importable there: the SavedModel must stand alone.
SERVE_ENV = dict(ENV, PYTHONPATH="")


def serving_command(export_dirs, signature, name, x, tmp_path):
    """(command serving x with each of export_dirs in one fresh interpreter, its output files)."""
    np.save(tmp_path / "x.npy", x)
    outputs = [tmp_path / f"out{i}.npz" for i in range(len(export_dirs))]
    command = [sys.executable, "-c", SERVE, signature, name, str(tmp_path / "x.npy")]
    for export_dir, output in zip(export_dirs, outputs):
        command += [str(export_dir), str(output)]
    return command, outputs


def served_outputs(proc, outputs):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [dict(np.load(output)) for output in outputs]


def serve_in_fresh_process(export_dir, signature, name, x, tmp_path):
    command, outputs = serving_command([export_dir], signature, name, x, tmp_path)
    proc = subprocess.run(command, cwd=tmp_path, env=SERVE_ENV, capture_output=True, text=True, timeout=300)
    return served_outputs(proc, outputs)[0]


def test_launch_exports_a_versioned_saved_model_that_serves_the_same_predictions(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    proc = subprocess.run([sys.executable, "-m", "tfsp.launch", "--task=mlc", "--method=ldrsp",
                           f"--arff={arff}", f"--xml={xml}", f"--model_dir={run_dir}", "--results_dir=",
                           "--epochs=1", "--refine_steps=3", "--verbose=0", f"--export_dir={export_dir}"],
                          cwd=tmp_path, env=LAUNCH_ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"exported: {export_dir / '1'}" in proc.stdout
    assert not TENSORFLOW_CHATTER.search(proc.stderr), proc.stderr
    assert sorted(p.name for p in export_dir.iterdir()) == ["1"]  # no temporary folder left behind

    # --mode=export from the run's checkpoint: the next version, the same weights.
    config = config_lib.merge_into(config_lib.ExperimentConfig(),
                                   json.loads((run_dir / "config.json").read_text()), "config.json")
    assert config.settings.test_refine.steps == 3
    assert export.export_from_model_dir(config, run_dir, export_dir) == export_dir / "2"
    data, model = experiment.restore(config, run_dir)
    # Both exports serve the test settings the run chose on validation (the mlc defaults choose
    # the steps and the threshold), not the configured ones.
    chosen = experiment.apply_chosen_test_settings(model, run_dir)
    assert set(chosen) == {"refine_steps", "threshold"} and model.test_refine.steps == chosen["refine_steps"]
    x, _ = next(iter(data.test))
    expected = model.predict_step(x)

    # Both versions served in a fresh interpreter while saved_model_cli (installed with
    # TensorFlow) shows the second's signature with its named inputs and outputs.
    serve, outputs = serving_command([export_dir / "1", export_dir / "2"], "serving_default", "inputs",
                                     x.numpy(), tmp_path)
    cli_show = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
                "--dir", str(export_dir / "2"), "--all"]
    serving, cli = run_concurrently([serve, cli_show], timeout=300, cwd=tmp_path, env=SERVE_ENV)
    from_training, from_checkpoint = served_outputs(serving, outputs)
    assert set(from_training) == {"prediction", "labels", "value", "prediction_inference_net"}
    np.testing.assert_allclose(from_training["prediction"], expected["y"].numpy(), atol=1e-5)
    np.testing.assert_allclose(from_training["value"], expected["value"].numpy(), atol=1e-5)
    np.testing.assert_allclose(from_training["prediction_inference_net"], expected["y_inference_net"].numpy(),
                               atol=1e-5)
    np.testing.assert_array_equal(from_training["labels"], expected["labels"].numpy())
    np.testing.assert_allclose(from_checkpoint["prediction"], from_training["prediction"], atol=1e-5)
    np.testing.assert_array_equal(from_checkpoint["labels"], from_training["labels"])
    # A step count given at export (other than the training config's) wins over the chosen one.
    overridden = config_lib.merge_into(config_lib.ExperimentConfig(),
                                       json.loads((run_dir / "config.json").read_text()), "config.json")
    overridden.settings.test_refine.steps = 7
    assert set(experiment.apply_chosen_test_settings(model, run_dir, overridden)) == {"threshold"}

    assert cli.returncode == 0, cli.stderr[-3000:]
    default = cli.stdout.split("signature_def['serving_default']")[1]
    for name in ("inputs['inputs']", "outputs['prediction']", "outputs['labels']", "outputs['value']"):
        assert name in default, cli.stdout
    assert "shape: (-1, 12)" in default and "DT_FLOAT" in default

    # Wrong shape or dtype: the error names the expected shape.
    loaded = tf.saved_model.load(str(export_dir / "2"))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"`inputs` must be a float32 tensor of shape \[batch, 12\] with finite values; "
                             r"got shape \[2, 11\]"):
        loaded.signatures["serving_default"](inputs=tf.zeros([2, 11]))
    with pytest.raises(TypeError, match=r"shape=\(None, 12\), dtype=tf.float32"):
        loaded.serve(tf.zeros([2, 11]))
    with pytest.raises(TypeError, match=r"shape=\(None, 12\), dtype=tf.float32"):
        loaded.serve(tf.zeros([2, 12], tf.float64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        loaded.signatures["serving_default"](inputs=tf.zeros([2, 12], tf.float64))


def test_a_training_run_exports_the_model_it_trained_without_loading_the_data_again(tiny_mulan, tmp_path,
                                                                                    monkeypatch):
    arff, xml = tiny_mulan
    loads = []

    def counted(*args, **kwargs):
        loads.append(args)
        return build_task_data(*args, **kwargs)

    build_task_data = experiment.build_task_data
    monkeypatch.setattr(experiment, "build_task_data", counted)
    config = config_lib.resolve("mlc", "ldrsp", {"data": {"arff": str(arff), "xml": str(xml)}, "epochs": 1,
                                                 "test_refine": {"steps": 2}})
    record = experiment.run(config, str(tmp_path / "run"), None, verbose=0, export_dir=str(tmp_path / "exports"))
    assert record["export"] == str(tmp_path / "exports" / "1") and len(loads) == 1
    serve = tf.saved_model.load(record["export"]).signatures["serving_default"]
    assert set(serve(inputs=tf.zeros([2, 12]))) == {"prediction", "labels", "value", "prediction_inference_net"}


def test_segmentation_export_takes_float_or_uint8_images(tmp_path):
    # 3-class segmentation, LDRSP with its crop grid and simplex refinement; weights need not be trained.
    spec = multiclass_segmentation_spec("toy", 32, 3, crop_size=24, crop_grid=2)
    config = config_lib.resolve("lfw", "ldrsp", {
        "inference_net": {"filters": [4, 8, 8]}, "value_net": {"filters": [4, 8, 8]},
        "test_refine": {"steps": 3}, "crop_mode": "joint"})
    model = experiment.build_method(config, spec, steps_per_epoch=1)
    path = export.export_saved_model(model, tmp_path / "exports")
    assert path == tmp_path / "exports" / "1"

    images = np.random.RandomState(0).randint(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    expected = model.predict_step(tf.constant(images, tf.float32) / 255.0)
    served = serve_in_fresh_process(path, "serving_uint8", "images", images, tmp_path)
    assert served["class_ids"].shape == (2, 32, 32) and served["prediction"].shape == (2, 32, 32, 3)
    np.testing.assert_allclose(served["prediction"], expected["y"].numpy(), atol=1e-5)
    np.testing.assert_allclose(served["value"], expected["value"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(served["class_ids"], np.argmax(expected["y"].numpy(), -1))

    loaded = tf.saved_model.load(str(path))
    as_float = loaded.signatures["serving_default"](inputs=tf.constant(images, tf.float32) / 255.0)
    np.testing.assert_allclose(as_float["prediction"].numpy(), served["prediction"], atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"`images` must be a uint8 tensor of shape \[batch, 32, 32, 3\]; got shape \[1, 24, 24, 3\]"):
        loaded.signatures["serving_uint8"](images=tf.zeros([1, 24, 24, 3], tf.uint8))

    # Float images must be in [0, 1] (0..255 ones are meant for serving_uint8) and finite.
    in_range = r"`inputs` must be a float32 tensor of shape \[batch, 32, 32, 3\] with finite values in \[0, 1\]"
    bad = np.zeros((3, 32, 32, 3), np.float32)
    bad[1] = 255.0
    with pytest.raises(tf.errors.InvalidArgumentError, match=in_range + r"; got a value outside .* in example 1 "
                                                             r"\(images in 0\.\.255 go to the serving_uint8"):
        loaded.signatures["serving_default"](inputs=tf.constant(bad))
    bad[1] = 0.0
    bad[2, 5, 5, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match=in_range + r"; got .* not finite in example 2"):
        loaded.signatures["serving_default"](inputs=tf.constant(bad))
    # An empty batch (the crop grid's reshapes once failed on it) gives empty outputs of the right shapes.
    for signature, name, dtype in (("serving_default", "inputs", tf.float32), ("serving_uint8", "images", tf.uint8)):
        empty = loaded.signatures[signature](**{name: tf.zeros([0, 32, 32, 3], dtype)})
        assert {k: tuple(v.shape) for k, v in empty.items()} == {
            "prediction": (0, 32, 32, 3), "labels": (0, 32, 32, 3), "class_ids": (0, 32, 32),
            "value": (0,), "prediction_inference_net": (0, 32, 32, 3)}


def test_versions_count_up_and_ignore_other_folders(tmp_path):
    (tmp_path / "3").mkdir()
    (tmp_path / ".tmp-export-x").mkdir()
    (tmp_path / "notes").mkdir()
    assert export.next_version(tmp_path) == 4
    assert export.next_version(tmp_path / "missing") == 1


def test_a_method_without_refinement_exports_prediction_and_labels(tmp_path):
    from tfsp.spec import multilabel_spec

    spec = multilabel_spec("toy", 5, 3)
    config = config_lib.resolve("mlc", "feedforward", {"inference_net": {"hidden": [4]}})
    model = experiment.build_method(config, spec, steps_per_epoch=1)
    loaded = tf.saved_model.load(str(export.export_saved_model(model, tmp_path)))
    x = tf.constant(np.random.RandomState(0).rand(4, 5).astype(np.float32))
    served = loaded.signatures["serving_default"](inputs=x)
    assert set(served) == {"prediction", "labels"}
    np.testing.assert_allclose(served["prediction"].numpy(), model.infer(x)["y"].numpy(), atol=1e-6)
    assert not hasattr(loaded, "serve_uint8")


def test_serving_names_the_expected_input_for_a_wrong_rank_or_non_finite_values(tmp_path):
    from tfsp.spec import multilabel_spec

    spec = multilabel_spec("toy", 12, 3)
    config = config_lib.resolve("mlc", "ldrsp", {"inference_net": {"hidden": [4]}, "value_net": {"hidden": [4]},
                                                 "test_refine": {"steps": 2}})
    model = experiment.build_method(config, spec, steps_per_epoch=1)
    serve = tf.saved_model.load(str(export.export_saved_model(model, tmp_path))).signatures["serving_default"]
    expected = r"tfsp serving: `inputs` must be a float32 tensor of shape \[batch, 12\] with finite values; "
    # Other ranks than [batch, 12] reach the graph through a signature call; they once failed in MatMul.
    for shape in ([5], [12], [2, 12, 1]):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=expected + rf"got shape \[{', '.join(map(str, shape))}\]"):
            serve(inputs=tf.zeros(shape))
    # NaN or infinite features were served as an empty label set.
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros((4, 12), np.float32)
        x[3, 7] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match=expected + "got a NaN or infinite value in example 3"):
            serve(inputs=tf.constant(x))
    empty = serve(inputs=tf.zeros([0, 12]))
    assert {k: tuple(v.shape) for k, v in empty.items()} == {
        "prediction": (0, 3), "labels": (0, 3), "value": (0,), "prediction_inference_net": (0, 3)}
    x = tf.constant(np.random.RandomState(0).rand(3, 12).astype(np.float32))
    np.testing.assert_allclose(serve(inputs=x)["prediction"].numpy(), model.infer(x)["y"].numpy(), atol=1e-5)


# ----- the launcher's stderr -------------------------------------------------------------------
def test_tf_cpp_min_log_level_0_shows_tensorflow_start_up_again(tmp_path):
    # A launcher run that stops at the data (after TensorFlow started): the start-up lines are back.
    proc = subprocess.run([sys.executable, "-m", "tfsp.launch", "--task=mlc", "--arff=missing.arff",
                           "--xml=missing.xml", "--results_dir="],
                          cwd=tmp_path, env=dict(LAUNCH_ENV, TF_CPP_MIN_LOG_LEVEL="0"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "missing.arff" in proc.stderr, proc.stderr[-3000:]
    assert "oneDNN" in proc.stderr or "cpu_feature_guard" in proc.stderr, proc.stderr[-3000:]


def test_start_up_lines_pass_by_level():
    from tfsp.launch import _start_up_lines_to_show

    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796160498.584027    5300 port.cc:153] oneDNN custom operations are on.\n"
            "I0000 00:00:1796160498.584474    5300 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
            "I0000 00:00:1796160500.720277    5300 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
            "To enable the following instructions: AVX2, in other operations, rebuild TensorFlow\n"
            "/x/y.py:3: UserWarning: a Python warning\n"
            "  warnings.warn('a Python warning')\n"
            "W0000 00:00:1796160500.720970    5300 something.cc:31] a warning\n"
            "E0000 00:00:1796160500.146796    5300 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
            "E0000 00:00:1796160500.146796    5300 other.cc:52] an error\n")
    assert _start_up_lines_to_show(text, 2) == (
        "/x/y.py:3: UserWarning: a Python warning\n  warnings.warn('a Python warning')\n"
        "E0000 00:00:1796160500.146796    5300 other.cc:52] an error\n")
    assert "a warning\n" in _start_up_lines_to_show(text, 1)
    assert "To enable" not in _start_up_lines_to_show(text, 1)
    assert "UserWarning" in _start_up_lines_to_show(text, 3) and "an error" not in _start_up_lines_to_show(text, 3)
    # With a CUDA driver present, a failing cuInit is news.
    assert "cuInit" in _start_up_lines_to_show(text.replace("Could not find cuda drivers", "Found"), 2)
