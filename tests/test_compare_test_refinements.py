"""launch/compare_test_refinements.py on a tiny trained DVN: each variant's validation metrics and
the chosen one in a results JSON that records its command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfsp import config as config_lib
from tfsp import experiment

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_horses(tmp_path_factory):
    """Six synthetic horse images and a DVN trained one update on two of them (both tests
    only read its model dir)."""
    from test_images_data import _horse_tree

    root = tmp_path_factory.mktemp("compare")
    _horse_tree(root / "data", n=6)
    data = {"data_dir": str(root / "data"), "split_sizes": [2, 2, 2], "crop_grid": 2}
    config = config_lib.resolve("horses", "dvn", {
        "data": data, "value_net": {"filters": [4, 4, 4], "dense": [8, 8]}, "updates": 1, "validation_every": 1,
        "test_refine": {"steps": 2}})
    run_dir = root / "runs" / "horses-dvn"
    experiment.run(config, str(run_dir), None, verbose=0)
    return data, run_dir


def test_compares_refinements_on_validation_and_records_the_choice(tiny_horses, tmp_path):
    _, run_dir = tiny_horses
    output = tmp_path / "compare.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "launch" / "compare_test_refinements.py"), f"--model_dir={run_dir}",
         f"--output={output}", "--variant=as_trained={}", '--variant=decay={"steps":3,"decay":0.5}'],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(output.read_text())
    assert record["split"] == "validation" and record["primary_metric"] == "mean_iou"
    assert set(record["variants"]) == {"as_trained", "decay"}
    assert record["variants"]["decay"]["fields"] == {"steps": 3, "decay": 0.5}
    assert record["chosen"] == max(record["variants"], key=lambda n: record["variants"][n]["validation"]["mean_iou"])
    assert record["configured_test_refine"]["steps"] == 2
    assert "compare_test_refinements.py" in record["command"] and record["git_rev"]


def test_refinements_can_start_from_another_runs_prediction(tiny_horses, tmp_path):
    """--start_model_dir: the DVN's refinements start at an FCN's prediction, so zero steps
    score exactly what the FCN scores."""
    data, dvn_dir = tiny_horses
    runs = {"dvn": dvn_dir, "fcn": tmp_path / "runs" / "horses-fcn"}
    config = config_lib.resolve("horses", "fcn", {"data": data, "updates": 1, "validation_every": 1,
                                                  "inference_net": {"filters": [4, 4, 4]}})
    experiment.run(config, str(runs["fcn"]), None, verbose=0)
    output = tmp_path / "compare.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "launch" / "compare_test_refinements.py"), f"--model_dir={runs['dvn']}",
         f"--start_model_dir={runs['fcn']}", f"--output={output}", '--variant=start={"steps":0}',
         "--variant=as_trained={}"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(output.read_text())
    assert record["start_model_dir"] == str(runs["fcn"])
    _, fcn_data, fcn = experiment.restore_stored(str(runs["fcn"]))
    from tfsp import evaluation

    fcn_metrics = evaluation.evaluate(fcn, fcn_data.validation)
    for name, value in fcn_metrics.items():
        assert abs(record["variants"]["start"]["validation"][name] - value) < 1e-4, (name, record, fcn_metrics)
