"""Scale-out: replicated training equals one-device training on the same global batches,
and two worker processes on 127.0.0.1 train a tiny task to completion."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_concurrently
from tfsp import experiment

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
METHODS = ("feedforward", "dvn", "ldrsp", "implicit", "spen", "infnet")


def test_mirrored_over_two_devices_matches_one_device():
    # Logical devices must be configured before TensorFlow starts, so this runs in fresh
    # processes: two, each with half of the methods, side by side.
    halves = [METHODS[:3], METHODS[3:]]
    result = {}
    for proc in run_concurrently([[sys.executable, str(HERE / "distribute_child.py"), *half] for half in halves],
                                 env=ENV):
        assert proc.returncode == 0, proc.stderr[-3000:]
        part = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
        result.update({key: value for key, value in part.items() if key not in result})
    assert "replica_draws" in result  # drawn after the DVN run, in the first half
    # Two replicas add partial sums in another order than one device, so float32 results differ
    # by rounding (~6e-8 relative per sum), and this is all replication may change. Adam divides
    # each gradient component by its own running scale, so a component whose gradient is near
    # Adam's epsilon turns rounding into a visible step; elsewhere the steps agree. Measured:
    # final weights differ by 2e-8 to 3e-7 of their norm over 4 seeds (the largest, infnet, from
    # one such component), per-batch and epoch losses by at most 3e-7 relative. A replica
    # share of the global-batch loss halved gives 2e-2 to 5e-2 of the weights' norm and 0.2
    # relative in the losses; weight decay not split over the replicas gives 9e-4 (spen) to 5e-2.
    # So 1e-5 relative: 30x above rounding, 2 to 3 orders of magnitude below those bugs. Losses
    # near 0 are differences of O(1) terms (hinges, energy gaps), hence an absolute floor.
    loss_tolerance = dict(rel=1e-5, abs=1e-6)
    for method in METHODS:
        single, replicated = result[method]["single"], result[method]["replicated"]
        assert len(single) == len(replicated) == 8  # 2 epochs of 4 batches, the last one of 1 example
        for a, b in zip(single, replicated):
            assert set(a) == set(b)
            for key in a:
                assert b[key] == pytest.approx(a[key], **loss_tolerance), (method, key, a, b)
        for key, values in result[method]["single_epochs"].items():
            assert result[method]["replicated_epochs"][key] == pytest.approx(values, **loss_tolerance), (method, key)
        weight_difference = result[method]["weight_relative_difference"]
        assert weight_difference < 1e-5, (method, weight_difference)
        # F1 counts thresholded predictions: equal unless a score lies within rounding of the
        # threshold (measured equal for every method; the halved share changes it by 0.2-4%).
        assert result[method]["replicated_eval"] == pytest.approx(result[method]["single_eval"], rel=1e-5, abs=1e-5)
    first, second = result["replica_draws"]
    assert first != second, "both replicas drew the same random numbers"
    first, second = result["dropout_masks"]
    assert first != second, "both replicas dropped the same positions"


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        experiment.make_strategy("multi_worker")
    with pytest.raises(ValueError, match="valid"):
        experiment.make_strategy("nope")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_a_tiny_task(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    command = [sys.executable, "-m", "tfsp.launch", "--strategy=multi_worker", "--task=mlc", "--method=dvn",
               f"--arff={arff}", f"--xml={xml}", f"--model_dir={tmp_path / 'run'}",
               f"--results_dir={tmp_path / 'results'}", "--epochs=1", "--refine_steps=2",
               "--set", "train_refine.steps=2", "--verbose=0"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**ENV, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(tmp_path / f"tmp{index}")}
        (tmp_path / f"tmp{index}").mkdir()
        processes.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for p in processes:
            outputs.append(p.communicate(timeout=300))
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(processes, outputs):
        assert p.returncode == 0, "\n".join(l for l in err.splitlines() if not l.lstrip().startswith(("[", "-", "0", "1", "2")))[-5000:]
    record = json.loads((tmp_path / "results" / "mlc-dvn.json").read_text())
    assert record["strategy"] == {"name": "multi_worker", "replicas": 2, "chief": True}
    assert record["epochs_run"] == 1 and 0 <= record["metrics"]["example_f1"] <= 100
    assert (tmp_path / "run" / "checkpoints" / "ckpt-1.index").exists()
    assert (tmp_path / "run" / "final" / "model.index").exists()
    # The non-chief worker wrote only to its temporary folder, and removed it.
    assert not list((tmp_path / "tmp1").iterdir())
