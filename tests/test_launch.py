"""The launcher end to end on a tiny MULAN dataset made by the test, and its handling of bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import launch_in_process
from tfsp import config as config_lib
from tfsp import experiment

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def launch(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tfsp.launch", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def test_launch_end_to_end_on_tiny_arff(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    proc = launch("--task=mlc", "--method=ldrsp", f"--arff={arff}", f"--xml={xml}",
                  f"--model_dir={tmp_path / 'run'}", f"--results_dir={tmp_path / 'results'}",
                  "--epochs=2", "--step_curve=4", "--refine_steps=4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "mlc-ldrsp.json").read_text())
    for key in ("task", "method", "metrics", "metrics_inference_net", "seed", "split", "config",
                "git_rev", "command", "wall_seconds", "train_seconds"):
        assert key in record, key
    assert 0 <= record["metrics"]["example_f1"] <= 100
    assert len(record["step_curve"]["example_f1"]) == 5
    # The curve agrees with the evaluation at the number of steps chosen on validation (the mlc
    # default; at most the configured 4), and with G alone at step 0.
    chosen = record["refine_steps_selected"]["chosen"]
    assert 0 <= chosen <= 4
    assert record["step_curve"]["example_f1"][chosen] == pytest.approx(record["metrics"]["example_f1"], abs=1e-3)
    assert record["step_curve"]["example_f1"][0] == pytest.approx(
        record["metrics_inference_net"]["example_f1"], abs=1e-3)
    assert list((tmp_path / "run" / "checkpoints").glob("ckpt-2.index"))
    events = list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event files"
    tags = set()
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.add(value.tag)
    assert {"epoch_d_loss", "epoch_g_loss", "epoch_example_f1"} <= tags, tags

    # Rerunning the same command with more epochs resumes after the last finished epoch instead of
    # starting over (and replaces the record of the run it extends).
    # (This and the next launch in this process: the fresh one above covered start-up.)
    proc = launch_in_process("--task=mlc", "--method=ldrsp", f"--arff={arff}", f"--xml={xml}",
                             f"--model_dir={tmp_path / 'run'}", f"--results_dir={tmp_path / 'results'}",
                             "--epochs=3", "--refine_steps=4", "--verbose=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "mlc-ldrsp.json").read_text())
    assert record["initial_epoch"] == 2 and record["epochs_run"] == 1

    # --mode=evaluate re-evaluates the kept weights (given the settings that trained them), here
    # with other refinement settings.
    proc = launch_in_process("--mode=evaluate", "--task=mlc", "--method=ldrsp", f"--arff={arff}", f"--xml={xml}",
                             f"--model_dir={tmp_path / 'run'}", f"--results_dir={tmp_path / 'eval'}",
                             "--epochs=3", "--refine_steps=0", "--verbose=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "mlc-ldrsp.json").read_text())
    # With no refinement steps the final prediction is G(x) alone.
    assert evaluated["metrics"]["example_f1"] == pytest.approx(
        evaluated["metrics_inference_net"]["example_f1"])
    assert evaluated["metrics_inference_net"] == pytest.approx(record["metrics_inference_net"])


def test_unknown_task_and_method_list_valid_ones(tmp_path):
    from conftest import run_concurrently

    task, method, value = run_concurrently(
        [[sys.executable, "-m", "tfsp.launch", *args]
         for args in (["--task=nope"], ["--task=bibtex", "--method=nope"], ["--task=mlc", "--set", "data.batch_size=abc"])],
        timeout=300, cwd=tmp_path, env=ENV)
    assert task.returncode != 0 and "bibtex" in task.stderr
    assert method.returncode != 0 and "ldrsp" in method.stderr and "dvn" in method.stderr
    # A bad value: status 2 and one line, without absl's usage text (tests/test_run_records.py
    # checks the other bad values in-process).
    assert value.returncode == 2
    assert value.stderr.strip() == "error: command line: data.batch_size: expected an integer, got 'abc'", value.stderr


def test_missing_data_names_the_files(tmp_path):
    proc = launch("--task=bibtex", "--method=dvn", f"--data_dir={tmp_path}", "--epochs=1",
                  f"--model_dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert "bibtex.arff" in proc.stderr and "mulan.sourceforge.net" in proc.stderr


def test_unknown_config_key_is_an_error():
    with pytest.raises(config_lib.ConfigError, match="batch_sise"):
        config_lib.resolve("bibtex", "dvn", {"data": {"batch_sise": 3}})


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    config = config_lib.resolve("mlc", "feedforward", {
        "data": {"arff": str(arff), "xml": str(xml)}, "epochs": 4, "select_best": False,
        "early_stopping_validations": 0,
        # After one good epoch the learning rate explodes, and so do the weights.
        "optimizer": {"name": "sgd", "learning_rate": 0.01, "decay_epochs": [1], "decay_factor": 1e30}})
    with pytest.raises(experiment.TrainingDiverged, match="non-finite.*ckpt-1"):
        experiment.run(config, str(tmp_path / "run"), str(tmp_path / "results.json"), verbose=0)
    assert not (tmp_path / "results.json").exists()
    checkpoints = tf.train.get_checkpoint_state(str(tmp_path / "run" / "checkpoints"))
    assert checkpoints.model_checkpoint_path.endswith("ckpt-1")
    reader = tf.train.load_checkpoint(checkpoints.model_checkpoint_path)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.isfinite(value).all(), name


def test_bookmarks_task_runs_on_a_fixture(tmp_path):
    # Bookmarks itself is not available here; the same code path runs on a stand-in with its file names.
    from conftest import correlated_multilabel, write_arff

    features, labels = correlated_multilabel(n=120, num_features=10, num_labels=6)
    write_arff(tmp_path / "bookmarks.arff", features, labels, labels_first=True, sparse=False)
    config = config_lib.resolve("bookmarks", "dvn", {
        "data": {"data_dir": str(tmp_path)}, "epochs": 1,
        "train_refine": {"steps": 2}, "test_refine": {"steps": 2}})
    assert config.value_net.spen_second_layer and config.settings.test_refine.step_size == 0.75
    record = experiment.run(config, str(tmp_path / "run"), str(tmp_path / "bookmarks-dvn.json"), verbose=0)
    assert record["sizes"]["train"] + record["sizes"]["validation"] == round(0.66 * 120)
    assert (tmp_path / "bookmarks-dvn.json").exists()


def test_final_epochs_on_train_and_validation(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    config = config_lib.resolve("mlc", "feedforward", {
        "data": {"arff": str(arff), "xml": str(xml)}, "epochs": 2, "final_epochs_on_all_training_data": 1,
        "early_stopping_validations": 0})
    record = experiment.run(config, str(tmp_path / "run"), None, verbose=0)
    assert record["epochs_run"] == 3 and record["best_epoch"] is None
    # Validation is monitored only while it is held out.
    assert len(record["history"]["loss"]) == 3 and len(record["history"]["val_example_f1"]) == 2
    assert tf.train.get_checkpoint_state(str(tmp_path / "run" / "checkpoints")).model_checkpoint_path.endswith("ckpt-3")


def test_epochs_flag_replaces_a_task_files_update_budget(tiny_mulan, tmp_path):
    """A task file may size runs in updates (tasks/horses.json, tasks/lfw.json); --epochs is then
    the budget, not silently outranked by it."""
    arff, xml = tiny_mulan
    task = json.loads(open(os.path.join(os.path.dirname(__file__), "..", "tasks", "mlc.json")).read())
    task["experiment"]["updates"] = 1000
    (tmp_path / "budget.json").write_text(json.dumps(task))
    proc = launch(f"--task={tmp_path / 'budget.json'}", "--method=feedforward", f"--arff={arff}",
                  f"--xml={xml}", "--epochs=1", f"--model_dir={tmp_path / 'run'}",
                  f"--results_dir={tmp_path / 'results'}", "--verbose=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
    assert record["epochs_run"] == 1 and record["config"]["updates"] == 0


def test_budget_in_updates_cheap_validation_and_sparse_checkpoints(tiny_mulan, tmp_path):
    """--set updates sizes the run (epochs = ceil(updates / steps per epoch)); validation on a
    fixed subset; checkpoints every 2 epochs and after the last; the record splits the time."""
    arff, xml = tiny_mulan
    proc = launch("--task=mlc", "--method=dvn", f"--arff={arff}", f"--xml={xml}",
                  f"--model_dir={tmp_path / 'run'}", f"--results_dir={tmp_path / 'results'}",
                  "--refine_steps=2", "--set", "train_refine.steps=2", "--set", "data.batch_size=50",
                  "--set", "updates=14", "--set", "validation_images=5", "--set", "checkpoint_every=2",
                  "--verbose=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "mlc-dvn.json").read_text())
    steps = record["steps_per_epoch"]
    epochs = -(-14 // steps)
    assert record["epochs_run"] == epochs and record["updates"] == epochs * steps
    assert record["config"]["epochs"] == epochs
    assert 0 <= record["validation_seconds"] <= record["train_seconds"]
    kept = sorted(int(p.name[len("ckpt-"):-len(".index")])
                  for p in (tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))
    assert kept[-1] == epochs and all(k % 2 == 0 or k == epochs for k in kept), kept
