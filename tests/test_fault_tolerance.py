"""A training run killed (SIGKILL) after an epoch checkpoint resumes when the same command
is run again and ends with exactly the metrics of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def launch_command(arff, xml, run_dir, results_dir):
    # LDRSP exercises everything a resume must restore: two optimizers, the sampling generator
    # (adversarial starts), dropout's random stream, the best-epoch selection and the data order.
    return [sys.executable, "-m", "tfsp.launch", "--task=mlc", "--method=ldrsp", f"--arff={arff}",
            f"--xml={xml}", f"--model_dir={run_dir}", f"--results_dir={results_dir}", "--epochs=5",
            "--deterministic", "--seed=0", "--refine_steps=2", "--set", "train_refine.steps=2",
            "--set", "data.batch_size=16", "--verbose=0"]


def test_killed_run_resumes_to_the_metrics_of_an_uninterrupted_run(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    reference = subprocess.Popen(launch_command(arff, xml, tmp_path / "reference", tmp_path / "reference_results"),
                                 cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    command = launch_command(arff, xml, tmp_path / "run", tmp_path / "results")
    victim = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    state = tmp_path / "run" / "checkpoints" / "checkpoint"  # written once a checkpoint is complete
    try:
        deadline = time.time() + 240
        while not state.exists() and victim.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert victim.poll() is None, "the run ended before its first checkpoint:\n" + victim.stderr.read()[-3000:]
        assert state.exists(), "no checkpoint within the time limit"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "results" / "mlc-ldrsp.json").exists(), "killed after it had finished"

    rerun = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-3000:]

    resumed = json.loads((tmp_path / "results" / "mlc-ldrsp.json").read_text())
    uninterrupted = json.loads((tmp_path / "reference_results" / "mlc-ldrsp.json").read_text())
    assert resumed["initial_epoch"] >= 1 and resumed["initial_epoch"] + resumed["epochs_run"] == 5
    assert uninterrupted["initial_epoch"] == 0
    assert resumed["best_epoch"] == uninterrupted["best_epoch"]
    # --deterministic and a checkpoint that holds all training state make the resumed run
    # bit-identical to the uninterrupted one, so its metrics and history are compared exactly.
    for key in ("metrics", "metrics_inference_net"):
        assert resumed[key] == uninterrupted[key], key
    # The resumed record holds every epoch (the killed process's too, from the log beside the
    # checkpoints), trained identically to the uninterrupted run's.
    # A logged epoch mean may differ in its last float32 bit (seen once on a CI machine in the
    # resumed process's first epoch, with the later epochs and the metrics identical, i.e. the same
    # weights): a bound of a few float32 ulps (rel 1e-6) tells that from a differently trained epoch.
    assert len(resumed["history"]["loss"]) == 5
    for key, values in uninterrupted["history"].items():
        assert resumed["history"][key] == pytest.approx(values, rel=1e-6, abs=1e-7), key
    # Its training time is that of all five epochs: the killed process's first one(s) included.
    rows = json.loads((tmp_path / "run" / "checkpoints" / "training_log.json").read_text())
    assert [row["epoch"] for row in rows] == [0, 1, 2, 3, 4]
    assert resumed["train_seconds"] == pytest.approx(sum(row["seconds"] for row in rows), abs=0.01)
    assert resumed["train_seconds_this_process"] > 0


def test_training_epochs_depend_only_on_seed_and_epoch():
    import numpy as np

    from tfsp.data import epochs
    from tfsp.data.images import segmentation_dataset

    def batches(dataset, count):
        return [tuple(t.numpy() for t in batch) for batch in dataset.take(count)]

    x = np.arange(10, dtype=np.float32)[:, None]
    y = 2 * x
    from_start = batches(epochs.shuffled_batches((x, y), 4, seed=3, first_epoch=0), 9)  # 3 epochs of 3 batches
    resumed = batches(epochs.shuffled_batches((x, y), 4, seed=3, first_epoch=2), 3)
    for a, b in zip(from_start[6:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
    orders = [np.concatenate([b[0] for b in from_start[3 * e:3 * e + 3]])[:, 0] for e in range(3)]
    assert all(sorted(o) == list(range(10)) for o in orders) and not np.array_equal(orders[0], orders[1])
    # The finite pipeline: one epoch per iteration, the same sequence of epochs for the same seed.
    finite = epochs.shuffled_batches((x, y), 4, seed=3)
    assert int(finite.cardinality()) == 3
    again = epochs.shuffled_batches((x, y), 4, seed=3)
    for _ in range(2):
        np.testing.assert_array_equal(np.concatenate([b[0] for b in finite]), np.concatenate([b[0] for b in again]))

    images = np.random.RandomState(0).rand(6, 8, 8, 3).astype(np.float32)
    masks = (images[..., :1] > 0.5).astype(np.float32)
    stream = batches(segmentation_dataset(images, masks, 4, training=True, crop_size=5, seed=1, first_epoch=0), 6)
    later = batches(segmentation_dataset(images, masks, 4, training=True, crop_size=5, seed=1, first_epoch=2), 2)
    for a, b in zip(stream[4:], later):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("method,overrides", [
    ("spen", {"pretrain_epochs": 1}),  # the phase is the optimizer's step counter
    ("infnet", {}),  # a second optimizer for the inference networks
    ("implicit", {"primary_loss": "cd", "pretrain_epochs": 1}),  # inner optimizer, sampling generator
])
def test_epoch_checkpoint_holds_the_extra_training_state(method, overrides, tmp_path):
    import numpy as np
    import tensorflow as tf

    from conftest import correlated_multilabel
    from test_methods import method_config
    from tfsp import callbacks, experiment
    from tfsp.spec import multilabel_spec

    x, y = correlated_multilabel(n=24, num_features=8, num_labels=6, seed=2)
    spec = multilabel_spec("synthetic", 8, 6, feature_mean=x.mean(0), feature_std=x.std(0) + 1e-6)
    config = method_config(method, **overrides)

    def state(model):
        values = {f"{name}/{i}:{v.name}": v for name, opt in model.optimizers().items()
                  for i, v in enumerate(opt.variables)}
        values.update({f"model/{i}:{v.name}": v
                       for i, v in enumerate(model.weights + callbacks.random_states(model))})
        values["sampling_rng"] = model.sampling_rng.state
        return {name: np.array(v) for name, v in values.items()}

    trained = experiment.build_method(config, spec, steps_per_epoch=2)
    trained.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0)
    callbacks.EpochCheckpoint(tmp_path, trained).manager.save()
    restored = experiment.build_method(config, spec, steps_per_epoch=2)
    callbacks.EpochCheckpoint(tmp_path, restored).restore_latest()
    expected, actual = state(trained), state(restored)
    assert expected.keys() == actual.keys()
    used = ["optimizer"] if method == "spen" else ["d_optimizer", "g_optimizer"]
    assert all(int(trained.optimizers()[name].iterations.numpy()) > 0 for name in used)
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=f"{method}: {name} not restored")


def test_checkpoint_of_another_model_gets_an_error_naming_it(tmp_path):
    """Rerunning into a model directory whose checkpoint another method (or an older tfsp)
    wrote fails with an error naming the checkpoint, instead of TensorFlow's matching dump."""
    import tensorflow as tf

    from conftest import correlated_multilabel
    from test_methods import method_config
    from tfsp import callbacks, experiment
    from tfsp.spec import multilabel_spec

    x, y = correlated_multilabel(n=16, num_features=8, num_labels=6, seed=2)
    spec = multilabel_spec("synthetic", 8, 6, feature_mean=x.mean(0), feature_std=x.std(0) + 1e-6)
    written = experiment.build_method(method_config("feedforward"), spec, steps_per_epoch=2)
    written.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0)
    callbacks.EpochCheckpoint(tmp_path, written).manager.save()
    other = experiment.build_method(method_config("ldrsp"), spec, steps_per_epoch=2)
    with pytest.raises(experiment.CheckpointMismatch, match=r"ckpt-1: this checkpoint does not match"):
        callbacks.EpochCheckpoint(tmp_path, other).restore_latest()


def test_best_weights_scores_an_epoch_by_the_best_of_several_monitors():
    """select_on="a,b": an epoch scores the better of its two validation metrics, so an epoch
    whose G alone (b) is best is kept although its refined metric (a) is lower than later ones."""
    import keras
    import numpy as np

    from tfsp.callbacks import BestWeights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = BestWeights(model, ["val_a", "val_b"])
    best.set_model(model)
    for epoch, logs in enumerate([{"val_a": 70.0, "val_b": 94.0}, {}, {"val_a": 88.4, "val_b": 88.9}]):
        model.layers[0].kernel.assign(np.full((2, 1), float(epoch)))
        best.on_epoch_end(epoch, logs)
    assert best.best_epoch == 1 and float(best.best.numpy()) == 94.0
    best.apply(model)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), np.zeros((2, 1)))
    only_a = BestWeights(model, "val_a")
    only_a.set_model(model)
    only_a.on_epoch_end(0, {"val_a": 70.0, "val_b": 94.0})
    only_a.on_epoch_end(1, {"val_a": 88.4, "val_b": 88.9})
    assert only_a.best_epoch == 2
