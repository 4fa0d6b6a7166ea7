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
    for key in ("metrics", "metrics_inference_net"):
        assert resumed[key].keys() == uninterrupted[key].keys()
        for name, value in uninterrupted[key].items():
            assert resumed[key][name] == pytest.approx(value, abs=1e-6), (key, name)
    # The epochs both ran were trained identically.
    first = resumed["initial_epoch"]
    assert resumed["history"]["loss"] == pytest.approx(uninterrupted["history"]["loss"][first:], abs=1e-6)
