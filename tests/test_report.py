"""tfsp.report on tiny synthetic results and a toy task file: the headline table (task files'
default configurations beside their published figures), the explorations table, training and
step curves, links relative to each page; and a qualitative grid from a tiny segmentation run."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tfsp import config as config_lib
from tfsp import experiment, report, report_benchmarks, report_figures

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


TOY_TASK = {"task": "toy", "default_method": "dvn",
            "experiment": {"epochs": 4, "validation_every": 2},
            "methods": {"feedforward": {}, "dvn": {}, "ldrsp": {"epochs": 6}},
            "published": {"dvn": {"example_f1": 41.0, "source": "Someone 2020, Table 1"},
                          "ldrsp": [{"example_f1": 50, "inference_net_example_f1": 45, "source": "Other 2021"},
                                    {"superpixel_accuracy": 90, "source": "Third 2022, another measure"}]}}


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """tasks/toy.json in a folder of its own (TFSP_TASKS_DIR); the real task files stay reachable."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "toy.json").write_text(json.dumps(TOY_TASK))
    monkeypatch.setenv(config_lib.TASKS_DIR_ENV, str(tasks))
    return tasks


def record(task, method, seed=0, loader="mulan", metric="example_f1", value=None, **extra):
    epochs = 4
    return {"task": task, "method": method, "seed": seed, "metrics": {metric: 40.0 + seed if value is None else value},
            "config": {"task": task, "method": method, "epochs": epochs, "validation_every": 2,
                       "data": {"loader": loader}},
            "command": f"python -m tfsp.launch --task={task} --method={method} --model_dir=runs/none",
            "git_rev": "0" * 40, "train_seconds": 1.0, "initial_epoch": 0,
            "history": {"loss": [1.0, 0.8, 0.7, 0.6], "cross_entropy": [0.9, 0.7, 0.6, 0.5],
                        f"val_{metric}": [30.0, 35.0]}, **extra}


def named(records, folder="/r/results"):
    for name, r in records.items():
        r["_path"] = f"{folder}/{name}.json"
    return list(records.values())


def test_report_renders_tables_figures_and_relative_links(tmp_path, toy_task):
    results = tmp_path / "results"
    results.mkdir()
    curve = {"step": [0, 1, 2], "example_f1": [30.0, 32.0, 33.0]}
    files = {"toy-feedforward.json": record("toy", "feedforward"),
             "toy-feedforward-seed1.json": record("toy", "feedforward", seed=1),
             "toy-dvn.json": record("toy", "dvn", step_curve=curve),
             "shapes-fcn.json": record("shapes", "fcn", loader="horses", metric="mean_iou")}
    for name, content in files.items():
        (results / name).write_text(json.dumps(content))
    (tmp_path / "docs").mkdir()
    readme = tmp_path / "docs" / "README.md"
    readme.write_text(f"intro\n{report.START}\nold\n{report.END}\noutro\n")
    env = {**ENV, config_lib.TASKS_DIR_ENV: str(toy_task)}
    proc = subprocess.run([sys.executable, "-m", "tfsp.report", "--results_dir=results", "--output_dir=site",
                           f"--readme={readme}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = tmp_path / "site"
    for name in ("curves-toy.png", "curves-shapes.png", "step_curves.png"):
        assert (site / name).stat().st_size > 1000, name
    assert not (results / "results.md").exists()
    page = (site / "results.md").read_text()
    assert "| feedforward | 40.50 ± 0.71 | – | – | 2: 0, 1 | 1 |" in page, page
    # Links from site/results.md and from docs/README.md to the same files.
    assert "](curves-toy.png)" in page and "](step_curves.png)" in page
    assert "[toy-dvn.json](../results/toy-dvn.json)" in page
    assert page.startswith("Generated from `../results/*.json` by `python -m tfsp.report --results_dir=")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert "](../site/curves-shapes.png)" in text and "[toy-dvn.json](../results/toy-dvn.json)" in text


def test_headline_row_per_task_method_with_published_figures_and_difference(toy_task):
    records = named({"toy-dvn": record("toy", "dvn", value=40.0),
                     "toy-dvn-seed1": record("toy", "dvn", seed=1, value=42.0),
                     "toy-dvn-seed2": record("toy", "dvn", seed=2, value=44.0)})
    ldrsp = record("toy", "ldrsp", value=47.0, metrics_inference_net={"example_f1": 46.0})
    ldrsp["config"]["epochs"] = 6
    records += named({"toy-ldrsp": ldrsp})
    table = report.headline_tables(records, "/r")
    lines = table.splitlines()
    assert lines[2] == ("| method | example_f1 | example_f1, G alone | published | result − published | "
                        "n: seeds | train s | records |")
    # mean ± sample std over the three seeds; 42 - 41 published.
    assert ("| dvn | 42.00 ± 2.00 | – | example_f1 41 (Someone 2020, Table 1) | example_f1 +1.00 | 3: 0, 1, 2 | 1 | "
            "[toy-dvn.json](results/toy-dvn.json), [toy-dvn-seed1.json](results/toy-dvn-seed1.json), "
            "[toy-dvn-seed2.json](results/toy-dvn-seed2.json) |") in lines, table
    # G alone beside the refined result; a measure the runs do not report has no difference.
    assert ("| ldrsp | 47.00 | 46.00 | example_f1 50, G alone 45 (Other 2021)<br>superpixel_accuracy 90 "
            "(Third 2022, another measure) | example_f1 -3.00, G alone +1.00<br>superpixel_accuracy not measured | "
            "1: 0 | 1 | [toy-ldrsp.json](results/toy-ldrsp.json) |") in lines, table
    # A method of the task file without a run of its default configuration says so.
    assert [l for l in lines if l.startswith("| feedforward |")] == [
        "| feedforward | no run of the default configuration |  | – | – | – | – | – |"], table


def test_non_default_configuration_goes_to_explorations_with_its_differing_settings(toy_task):
    default = record("toy", "dvn")
    other = record("toy", "dvn", seed=1, refine_steps_selected={"chosen": 3, "configured": 20})
    other["config"].update(epochs=9, select_refine_steps=True, optimizer={"learning_rate": 0.0003},
                           sample_weights={"inference": 1, "adversarial": 1, "mismatched": 1})
    other["config"]["value_net"] = {"activation": "leaky_relu"}
    records = named({"toy-dvn": default, "toy-dvn-other": other})
    headline = report.headline_tables(records, "/r")
    assert "| dvn | 40.00 | example_f1 41 (Someone 2020, Table 1) | example_f1 -1.00 | 1: 0 |" in headline, headline
    assert "toy-dvn-other" not in headline
    table = report.explorations_table(records, "/r")
    assert ('| toy | dvn | epochs=9, optimizer.learning_rate=0.0003, sample_weights={"adversarial": 1, '
            '"inference": 1, "mismatched": 1}, select_refine_steps=true, value_net.activation=leaky_relu '
            '(steps chosen: [3]) | example_f1 41.00 | – | 1: 1 | 1 | [toy-dvn-other.json](results/toy-dvn-other.json) |'
            ) in table, table
    assert "toy-dvn.json" not in table
    # The headline says where the other configurations went when none is the default.
    lonely = report.headline_tables(named({"toy-dvn-other": other}), "/r")
    assert "| dvn | no run of the default configuration (1 other configuration under Explorations) |" in lonely


def test_rows_ignore_data_location_seed_and_crop_mode_comparison(toy_task):
    a = record("toy", "dvn")
    b = record("toy", "dvn", seed=1)
    a["config"]["data"]["data_dir"], b["config"]["data"]["data_dir"] = "/a", "../b"
    b["config"]["compare_crop_modes"] = False
    # A field the older file does not record counts at its default: still the default row.
    b["config"]["select_refine_steps"] = False
    table = report.results_table(named({"a": a, "b": b}), "/r")
    assert "| dvn | 40.50 ± 0.71 | example_f1 41 (Someone 2020, Table 1) | example_f1 -0.50 |" in table, table
    assert "| toy | dvn |" not in table  # no exploration


def test_maps_compared_whole_and_1_as_1_0(toy_task):
    a, b = record("toy", "dvn"), record("toy", "dvn", seed=1)
    b["config"]["sample_weights"] = {"inference": 1, "adversarial": 1}  # the default, as --set writes it
    c = record("toy", "dvn", seed=2)
    c["config"]["sample_weights"] = {"inference": 1.0, "adversarial": 1.0, "mismatched": 1.0}
    records = named({"a": a, "b": b, "c": c})
    assert "| dvn | 40.50 ± 0.71 | example_f1 41 (Someone 2020, Table 1) | example_f1 -0.50 |" in report.headline_tables(records, "/r")
    assert ('| toy | dvn | sample_weights={"adversarial": 1, "inference": 1, "mismatched": 1} | example_f1 42.00 |'
            in report.explorations_table(records, "/r"))


def test_records_of_a_task_without_task_file_are_explorations():
    records = named({"nofile-dvn": record("nofile", "dvn")})
    assert report.headline_tables(records, "/r") == ""
    assert "| nofile | dvn | epochs=4, validation_every=2 | example_f1 40.00 |" in report.explorations_table(records)


def test_step_curve_legend_tells_variants_apart(tmp_path, monkeypatch, toy_task):
    curve = {"step": [0, 1, 2], "example_f1": [30.0, 32.0, 33.0]}
    a, b, c = (record("toy", "dvn", step_curve=curve) for _ in range(3))
    b["config"]["epochs"] = 9
    c["config"]["optimizer"] = {"learning_rate": 0.01}
    records = named({"toy-dvn": a, "toy-dvn-long": b, "toy-dvn-lr": c}, str(tmp_path))
    labels = []
    real_save = report_figures._save
    monkeypatch.setattr(report_figures, "_save", lambda fig, path: (
        labels.extend(t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()), real_save(fig, path)))
    assert report_figures.step_curve_figure(records, str(tmp_path / "steps.png"), defaults={a["_path"]})
    assert labels == ["toy-dvn (task default)", "toy-dvn-long", "toy-dvn-lr"]


def test_convergence_table_counts_steps_to_within_a_tenth_of_the_best(tmp_path, toy_task):
    # ALEN's measure (issue 14 item 4): the first step within 0.1 points of the curve's best.
    assert report_figures.steps_to_converge([40.0, 44.0, 45.95, 46.0, 45.0]) == 2
    assert report_figures.steps_to_converge([46.0, 45.0]) == 0
    curve = {"step": [0, 1, 2, 3], "example_f1": [30.0, 32.0, 33.0, 32.95]}
    records = named({"toy-ldrsp": record("toy", "ldrsp", step_curve=curve)}, str(tmp_path))
    table = report_figures.convergence_table(records, str(tmp_path), defaults={records[0]["_path"]})
    assert "| toy | ldrsp | [toy-ldrsp (task default)](toy-ldrsp.json) | example_f1 30.00 | 33.00 (2) | 2 | 32.95 (3) |" in table
    assert report_figures.convergence_table([], str(tmp_path)) == ""


def test_validation_epochs_follow_validation_every():
    r = record("toy", "dvn")
    assert report_figures._history_epochs(r, "loss", 4) == [1, 2, 3, 4]
    assert report_figures._history_epochs(r, "val_example_f1", 2) == [2, 4]


def test_qualitative_grid_from_a_tiny_segmentation_run(tmp_path, monkeypatch):
    from test_images_data import _horse_tree

    from tfsp.figures import render_grid

    _horse_tree(tmp_path / "data", n=6)
    config = config_lib.resolve("horses", "fcn", {
        "data": {"data_dir": str(tmp_path / "data"), "split_sizes": [2, 2, 2], "crop_grid": 2},
        "inference_net": {"filters": [4, 4, 4]}, "epochs": 1})
    run_dir = tmp_path / "runs" / "horses-fcn"
    rec = experiment.run(config, str(run_dir), None, verbose=0)
    rec.update(_path=str(tmp_path / "horses-fcn.json"), command=f"python -m tfsp.launch --model_dir={run_dir}")
    written = report_figures.qualitative_figures([rec], str(tmp_path))
    assert written == [str(tmp_path / "qualitative-horses.png")]
    assert (tmp_path / "qualitative-horses.png").stat().st_size > 1000
    assert "](qualitative-horses.png)" in report_figures.figure_links(str(tmp_path), str(tmp_path))
    # Two runs under one label get column titles that tell them apart.
    from matplotlib.figure import Figure

    titles = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (
        titles.extend(ax.get_title() for ax in fig.axes if ax.get_title()), real_savefig(fig, *a, **k)))
    other_dir = tmp_path / "runs" / "horses-fcn-copy"
    shutil.copytree(run_dir, other_dir)
    render_grid([("fcn", str(run_dir)), ("fcn", str(other_dir))], tmp_path / "two.png", examples=2)
    assert titles == ["image", "ground truth", "fcn (horses-fcn)", "fcn (horses-fcn-copy)"]


def test_segmentation_benchmark_table(tmp_path):
    row = {"method": "ldrsp", "crop_mode": "average", "crops_per_image": 36, "crop_size": 24, "images": 100,
           "steps": 30, "step_size": 4.0, "compiled_ms_per_image": 2.0, "compiled_xla_ms_per_image": 1.5,
           "eager_loop_ms_per_image": 20.0, "compiled_speedup_over_eager": 10.0}
    (tmp_path / "benchmark-horses.json").write_text(json.dumps(
        {"benchmark": "horses", "refinement": [row], "command": "launch/benchmark_segmentation.py",
         "machine": {"load_average_1_5_15min": [1, 1, 1]}}))
    table = report_benchmarks.segmentation_benchmark_tables(str(tmp_path))
    assert "| ldrsp (average) | 36 × 24² | 100 | 30 × 4 | 2.00 | 1.50 | 20.00 | 10.0× |" in table


def test_updates_benchmark_table_names_cpu_and_projects_10k_updates(tmp_path):
    rows = [{"method": "dvn", "policy": "float32", "jit_compile": False, "seconds_per_update": 0.3,
             "batch_size": 16, "train_refine_steps": 10, "adversarial_steps": 3},
            {"method": "dvn", "policy": "mixed_bfloat16", "jit_compile": False, "seconds_per_update": 0.15,
             "batch_size": 16, "train_refine_steps": 10, "adversarial_steps": 3, "speedup_vs_float32": 2.0}]
    (tmp_path / "benchmark-updates-horses.json").write_text(json.dumps(
        {"task": "horses", "rows": rows, "command": "python launch/benchmark_updates.py",
         "machine": {"load_average_1_5_15min": [0, 0, 0], "cpu_model": "Test CPU",
                     "bfloat16_features": ["amx_bf16"]}}))
    table = report_benchmarks.updates_benchmark_tables(str(tmp_path))
    assert "CPU Test CPU (bfloat16 features: amx_bf16)" in table
    assert "| dvn | float32 | no | 0.300 (16) | 10 / 3 | 50 | – |" in table
    assert "| dvn | mixed_bfloat16 | no | 0.150 (16) | 10 / 3 | 25 | 2.00× |" in table
    # The refinement-benchmark tables skip this file.
    assert report_benchmarks.segmentation_benchmark_tables(str(tmp_path)) == ""


def test_published_entry_without_source_is_an_error_naming_the_file(toy_task):
    content = {**TOY_TASK, "_path": str(toy_task / "toy.json"), "published": {"dvn": {"example_f1": 41.0}}}
    with pytest.raises(config_lib.ConfigError, match=r"toy\.json: published\.dvn: each entry needs a \"source\""):
        report.published_of(content, "dvn")


def test_settings_another_setting_makes_unused_do_not_tell_runs_apart(toy_task):
    # A run budgeted in updates ignores epochs; DVN training with test_refine ignores train_refine.
    a, b = record("toy", "dvn"), record("toy", "dvn")
    for r, epochs, steps in ((a, 4, 5), (b, 9, 20)):
        r["config"].update(epochs=epochs, updates=100, train_with_test_refine=True,
                           settings={"train_refine": {"steps": steps}})
    assert report._signature(a["config"]) == report._signature(b["config"])
    b["config"]["updates"] = 200
    assert report._signature(a["config"]) != report._signature(b["config"])
    b["config"].update(updates=100, train_with_test_refine=False)
    a["config"]["train_with_test_refine"] = False
    assert report._signature(a["config"]) != report._signature(b["config"])  # train_refine counts again
