"""Chooses between settings on repeated hold-out validation: several validation carves of the
same train part (data.validation_seed), each setting trained once per carve, compared on the
validation metric only (never on test). Writes a results JSON with the command, git revision,
each run's validation figures and, per setting, their mean and the mean paired difference
from the first setting.

    python launch/compare_on_holdouts.py --output=results/bibtex-ldrsp-g-adversarial-weight-holdouts.json \
        --setting='weight1=results/holdouts/bibtex-ldrsp-seed*-holdout*-g-adversarial1.json' \
        --setting='weight0.3=results/holdouts/bibtex-ldrsp-seed*-holdout*-g-adversarial0.3.json'

A run's validation figure is the one it selected on: the best point of its validation step
curve (refine_steps_selected) when it chose the test steps on validation, else the best
epoch's val_<metric>; "G alone" is step 0 of that curve (or val_inference_net_<metric>).
Runs of different settings are paired by (seed, validation carve); the chosen setting has the
highest mean validation figure (the first among ties).
"""

from __future__ import annotations

import glob
import statistics
import sys
from typing import Dict, List

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("setting", [], "name=GLOB[,GLOB...]: the results JSONs of one setting, one per "
                          "(seed, validation carve).")
flags.DEFINE_string("metric", None, "Primary metric (default: the first of the records' metrics).")
flags.DEFINE_string("output", None, "Results JSON to write.")
flags.mark_flags_as_required(["output"])


def carve_of(record: Dict) -> tuple:
    """(training seed, validation carve seed) of a run; the carve defaults to the split seed."""
    data = record.get("config", {}).get("data", {})
    carve = data.get("validation_seed", -1)
    return record["seed"], data.get("split_seed", 0) if carve is None or carve < 0 else carve


def validation_figures(record: Dict, metric: str) -> Dict[str, float]:
    """The validation figure a run selected on, and G alone's, as described in the module doc."""
    selected = record.get("refine_steps_selected")
    if selected:
        curve = selected["validation_curve"][metric]
        return {"validation": max(curve), "validation_inference_net": curve[0],
                "validation_steps": selected["chosen"]}
    history, best = record["history"], record["best_epoch"] - 1
    figures = {"validation": history[f"val_{metric}"][best]}
    if f"val_inference_net_{metric}" in history:
        figures["validation_inference_net"] = history[f"val_inference_net_{metric}"][best]
    return figures


def compare(settings: Dict[str, List[Dict]], metric: str) -> Dict:
    runs, first = {}, next(iter(settings))
    for name, records in settings.items():
        by_carve = {}
        for r in records:
            key = carve_of(r)
            if key in by_carve:
                raise ValueError(f"setting {name!r}: {r['_path']} and {by_carve[key]['record']} are both "
                                 f"seed {key[0]}, validation carve {key[1]}")
            by_carve[key] = {"record": r["_path"], "seed": key[0], "validation_seed": key[1],
                             **validation_figures(r, metric)}
        runs[name] = by_carve
    summary = {}
    for name, by_carve in runs.items():
        values = [v["validation"] for v in by_carve.values()]
        alone = [v["validation_inference_net"] for v in by_carve.values() if "validation_inference_net" in v]
        entry = {"runs": sorted(by_carve.values(), key=lambda v: (v["seed"], v["validation_seed"])),
                 "mean_validation": statistics.mean(values),
                 "std_validation": statistics.stdev(values) if len(values) > 1 else 0.0}
        if len(alone) == len(values):
            entry["mean_validation_inference_net"] = statistics.mean(alone)
            entry["mean_validation_gain"] = statistics.mean(values) - statistics.mean(alone)
        if name != first:
            paired = sorted(set(by_carve) & set(runs[first]))
            if not paired:
                raise ValueError(f"settings {first!r} and {name!r} share no (seed, validation carve)")
            differences = [by_carve[k]["validation"] - runs[first][k]["validation"] for k in paired]
            entry[f"paired_difference_from_{first}"] = {
                "mean": statistics.mean(differences), "values": differences, "pairs": [list(k) for k in paired]}
        summary[name] = entry
    chosen = max(summary, key=lambda n: (summary[n]["mean_validation"], -list(summary).index(n)))
    return {"metric": metric, "chosen": chosen, "settings": summary}


def main(argv):
    del argv
    from tfsp import results

    settings = {}
    for spec in FLAGS.setting:
        name, sep, patterns = spec.partition("=")
        if not sep or not name or not patterns:
            raise app.UsageError(f"--setting={spec!r}: expected name=GLOB[,GLOB...]")
        records = []
        paths = sorted({path for pattern in patterns.split(",") for path in glob.glob(pattern)})
        for path in paths:
            record = results.read_json(path)
            record["_path"] = path
            records.append(record)
        if not records:
            raise app.UsageError(f"--setting={spec!r}: no results file matches {patterns!r}")
        settings[name] = records
    if not settings:
        raise app.UsageError("give at least one --setting=name=GLOB")
    metric = FLAGS.metric or next(iter(next(r for rs in settings.values() for r in rs)["metrics"]))
    record = {**compare(settings, metric), **results.portable_command(sys.argv), "git_rev": results.git_revision()}
    results.write_json(FLAGS.output, record)
    print(f"chosen on validation: {record['chosen']}")
    for name, entry in record["settings"].items():
        print(f"  {name}: validation {entry['mean_validation']:.2f} ± {entry['std_validation']:.2f} "
              f"over {len(entry['runs'])} runs (seed, carve)")


if __name__ == "__main__":
    app.run(main)
