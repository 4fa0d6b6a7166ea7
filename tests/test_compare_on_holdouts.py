"""launch/compare_on_holdouts.py: settings compared on the validation figures their runs selected
on, paired by (seed, validation carve), the choice recorded with its command."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _record(path, seed, carve, curve=None, val=None):
    record = {"task": "bibtex", "method": "ldrsp", "seed": seed, "metrics": {"example_f1": 40.0},
              "config": {"data": {"split_seed": 0, "validation_seed": carve}}}
    if curve is not None:
        record["refine_steps_selected"] = {"chosen": curve.index(max(curve)), "configured": 2,
                                           "validation_curve": {"step": list(range(len(curve))), "example_f1": curve}}
    else:
        record.update(best_epoch=2, history={"val_example_f1": [1.0, val, 2.0]})
    path.write_text(json.dumps(record))


def _run(tmp_path, *settings):
    output = tmp_path / "holdouts.json"
    proc = subprocess.run([sys.executable, str(REPO / "launch" / "compare_on_holdouts.py"), f"--output={output}",
                           *[f"--setting={s}" for s in settings]], capture_output=True, text=True, cwd=REPO)
    return proc, output


def test_chooses_on_mean_validation_with_paired_differences(tmp_path):
    for carve, (a, b) in enumerate([([40.0, 42.0, 41.0], [39.0, 43.5]), ([45.0, 44.0], [44.0, 46.0])], start=1):
        _record(tmp_path / f"a-{carve}.json", seed=carve, carve=carve, curve=a)
        _record(tmp_path / f"b-{carve}.json", seed=carve, carve=carve, curve=b)
    _record(tmp_path / "c-1.json", seed=1, carve=1, val=43.0)
    _record(tmp_path / "c-2.json", seed=2, carve=-1, val=47.0)  # -1: the split seed's carve, 0
    proc, output = _run(tmp_path, f"a={tmp_path}/a-*.json", f"b={tmp_path}/b-*.json",
                        f"c={tmp_path}/c-1.json,{tmp_path}/c-2.json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(output.read_text())
    a, b, c = (record["settings"][n] for n in "abc")
    assert a["mean_validation"] == 43.5 and a["mean_validation_inference_net"] == 42.5
    assert b["mean_validation"] == 44.75 and b["paired_difference_from_a"]["values"] == [1.5, 1.0]
    assert [r["validation_steps"] for r in b["runs"]] == [1, 1]
    assert c["runs"][1]["validation_seed"] == 0 and "mean_validation_inference_net" not in c
    assert c["paired_difference_from_a"]["pairs"] == [[1, 1]]  # (2, 0) has no partner in a
    assert record["chosen"] == "c" and record["metric"] == "example_f1"
    assert record["command"].startswith("python launch/compare_on_holdouts.py") and record["git_rev"]


def test_errors_name_the_setting_at_fault(tmp_path):
    _record(tmp_path / "a-1.json", seed=1, carve=1, val=1.0)
    _record(tmp_path / "a-2.json", seed=1, carve=1, val=2.0)
    proc, _ = _run(tmp_path, f"a={tmp_path}/a-*.json")
    assert proc.returncode != 0 and "setting 'a'" in proc.stderr and "validation carve 1" in proc.stderr
    proc, _ = _run(tmp_path, f"b={tmp_path}/none-*.json")
    assert proc.returncode != 0 and "no results file matches" in proc.stderr
