"""tfsp.report on a tiny synthetic results folder: the Markdown table, training curves, step
curves, README links; and a qualitative grid from a tiny segmentation run."""

import json
import os
import subprocess
import sys

from tfsp import config as config_lib
from tfsp import experiment, report

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def record(task, method, seed=0, loader="mulan", metric="example_f1", **extra):
    epochs = 4
    return {"task": task, "method": method, "seed": seed, "metrics": {metric: 40.0 + seed},
            "config": {"epochs": epochs, "validation_every": 2, "data": {"loader": loader}},
            "command": f"python -m tfsp.launch --task={task} --method={method} --model_dir=runs/none",
            "git_rev": "0" * 40, "train_seconds": 1.0, "initial_epoch": 0,
            "history": {"loss": [1.0, 0.8, 0.7, 0.6], "cross_entropy": [0.9, 0.7, 0.6, 0.5],
                        f"val_{metric}": [30.0, 35.0]}, **extra}


def test_report_renders_table_and_figures(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    curve = {"step": [0, 1, 2], "example_f1": [30.0, 32.0, 33.0]}
    files = {"toy-feedforward.json": record("toy", "feedforward"),
             "toy-feedforward-seed1.json": record("toy", "feedforward", seed=1),
             "toy-dvn.json": record("toy", "dvn", step_curve=curve),
             "shapes-fcn.json": record("shapes", "fcn", loader="horses", metric="mean_iou")}
    for name, content in files.items():
        (results / name).write_text(json.dumps(content))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold\n{report.END}\noutro\n")
    proc = subprocess.run([sys.executable, "-m", "tfsp.report", f"--results_dir={results}",
                           f"--readme={readme}"], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("curves-toy.png", "curves-shapes.png", "step_curves.png", "results.md"):
        assert (results / name).stat().st_size > 1000 or name == "results.md", name
    table = (results / "results.md").read_text()
    assert "| toy | feedforward | example_f1 | 40.50 ± 0.71 (n=2) |" in table
    assert f"]({results}/curves-toy.png)" in table and f"]({results}/step_curves.png)" in table
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert "curves-shapes.png" in text


def test_table_rows_ignore_data_location_and_name_validation_selected_steps():
    a = record("toy", "dvn")
    b = record("toy", "dvn", seed=1)
    a["config"]["data"]["data_dir"], b["config"]["data"]["data_dir"] = "/a", "../b"
    # A field the older file does not record counts at its default: still one row ...
    b["config"]["select_refine_steps"] = False
    c = record("toy", "dvn", seed=2, refine_steps_selected={"chosen": 3, "configured": 20})
    c["config"].update(epochs=9, select_refine_steps=True)
    # ... and at another value it is another row, even with everything else equal.
    d = record("toy", "dvn", seed=0, refine_steps_selected={"chosen": 2, "configured": 20})
    d["config"]["select_refine_steps"] = True
    for name, r in zip("abcd", (a, b, c, d)):
        r["_file"] = f"results/{name}.json"
    table = report.results_table([a, b, c, d])
    assert "| toy | dvn epochs=4 | example_f1 | 40.50 ± 0.71 (n=2) |" in table, table
    assert "| toy | dvn epochs=9, refinement steps chosen on validation: [3] | example_f1 | 42.00 |" in table, table
    assert "| toy | dvn epochs=4, refinement steps chosen on validation: [2] | example_f1 | 40.00 |" in table, table


def test_validation_epochs_follow_validation_every():
    r = record("toy", "dvn")
    assert report._history_epochs(r, "loss", 4) == [1, 2, 3, 4]
    assert report._history_epochs(r, "val_example_f1", 2) == [2, 4]


def test_qualitative_grid_from_a_tiny_segmentation_run(tmp_path):
    from test_images_data import _horse_tree

    _horse_tree(tmp_path / "data", n=6)
    config = config_lib.resolve("horses", "fcn", {
        "data": {"data_dir": str(tmp_path / "data"), "split_sizes": [2, 2, 2], "crop_grid": 2},
        "inference_net": {"filters": [4, 4, 4]}, "epochs": 1})
    run_dir = tmp_path / "runs" / "horses-fcn"
    rec = experiment.run(config, str(run_dir), None, verbose=0)
    rec.update(_file="horses-fcn.json", command=f"python -m tfsp.launch --model_dir={run_dir}")
    written = report.qualitative_figures([rec], str(tmp_path))
    assert written == [str(tmp_path / "qualitative-horses.png")]
    assert (tmp_path / "qualitative-horses.png").stat().st_size > 1000
    assert "qualitative-horses.png" in report.figure_links(str(tmp_path))


def test_segmentation_benchmark_table(tmp_path):
    row = {"method": "ldrsp", "crop_mode": "average", "crops_per_image": 36, "crop_size": 24, "images": 100,
           "steps": 30, "step_size": 4.0, "compiled_ms_per_image": 2.0, "compiled_xla_ms_per_image": 1.5,
           "eager_loop_ms_per_image": 20.0, "compiled_speedup_over_eager": 10.0}
    (tmp_path / "benchmark-horses.json").write_text(json.dumps(
        {"benchmark": "horses", "refinement": [row], "command": "launch/benchmark_segmentation.py",
         "machine": {"load_average_1_5_15min": [1, 1, 1]}}))
    table = report.segmentation_benchmark_tables(str(tmp_path))
    assert "| ldrsp (average) | 36 × 24² | 100 | 30 × 4 | 2.00 | 1.50 | 20.00 | 10.0× |" in table


def test_table_compares_maps_whole_and_1_as_1_0():
    a, b = record("toy", "dvn"), record("toy", "dvn", seed=1)
    b["config"]["sample_weights"] = {"inference": 1, "adversarial": 1}  # the default, as --set writes it
    c = record("toy", "dvn", seed=2)
    c["config"]["sample_weights"] = {"inference": 1.0, "adversarial": 1.0, "mismatched": 1.0}
    for name, r in zip("abc", (a, b, c)):
        r["_file"] = f"results/{name}.json"
    table = report.results_table([a, b, c])
    assert '| toy | dvn sample_weights={"adversarial": 1, "inference": 1} | example_f1 | 40.50 ± 0.71 (n=2) |' in table, table
    assert '| toy | dvn sample_weights={"adversarial": 1, "inference": 1, "mismatched": 1} | example_f1 | 42.00 |' in table, table
