"""Renders committed results: a Markdown table (optionally into README) and PNG figures.

    python -m tfsp.report --results_dir=results --readme=README.md

The table is built only from `results/*.json`, each row with the command that wrote
it, so no number in the README is typed by hand. Figures: the metric after each
refinement step for every result that recorded a `step_curve`.
"""

from __future__ import annotations

import glob
import json
import os
import statistics
from collections import defaultdict
from typing import Dict, List

from absl import app, flags

from tfsp.results import atomic_write_text

FLAGS = flags.FLAGS
flags.DEFINE_string("results_dir", "results", "Folder of results/*.json.")
flags.DEFINE_string("readme", None, "If set, replace the block between the results markers in this file.")
flags.DEFINE_bool("figures", True, "Write PNG figures beside the results.")

START, END = "<!-- results:start -->", "<!-- results:end -->"


def load_results(results_dir: str) -> List[Dict]:
    records = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            record = json.load(f)
        if "task" in record and "method" in record and "metrics" in record:
            record["_file"] = os.path.relpath(path)
            records.append(record)
    return records


def _fmt(values: List[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (n={len(values)})"


def _flatten(config: Dict, prefix: str = "") -> Dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _signature(record: Dict):
    """The run's configuration without the seed (the rows' grouping key), hashable."""
    flat = _flatten(record.get("config", {}))
    flat.pop("seed", None)
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in flat.items()))


def results_table(records: List[Dict]) -> str:
    """One row per (task, method, variant, configuration): mean ± sd over seeds when several files share it."""
    groups = defaultdict(list)
    for r in records:
        groups[(r["task"], r["method"], r.get("variant", ""), _signature(r))].append(r)
    # Rows of one method and variant whose configurations differ say how (e.g. "epochs=25").
    siblings = defaultdict(list)
    for key in groups:
        siblings[key[:3]].append(dict(key[3]))
    lines = ["| task | method | metric | refined / final | inference net alone | train s | seeds | files |",
             "|---|---|---|---|---|---|---|---|"]
    for (task, method, variant, signature), group in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        others = siblings[(task, method, variant)]
        if len(others) > 1:
            # Fields only some files have (added to the code later) are not differences.
            shared = set.intersection(*(set(o) for o in others))
            differing = sorted(k for k in shared if len({o[k] for o in others}) > 1)
            settings = dict(signature)
            variant = ", ".join([variant] * bool(variant) + [f"{k}={settings.get(k)}" for k in differing])
        for metric in group[0]["metrics"]:
            final = [g["metrics"][metric] for g in group]
            alone = [g["metrics_inference_net"][metric] for g in group if "metrics_inference_net" in g]
            seconds = [g.get("train_seconds", float("nan")) for g in group]
            lines.append(
                f"| {task} | {method}{(' ' + variant) if variant else ''} | {metric} | {_fmt(final)} | "
                f"{_fmt(alone) if alone else '–'} | {statistics.mean(seconds):.0f} | "
                f"{', '.join(str(g['seed']) for g in group)} | "
                f"{', '.join('`' + g['_file'] + '`' for g in group)} |")
    commands = ["", "Commands that wrote them:", ""]
    for r in records:
        command = r.get("command", "?").replace("'python -m tfsp.launch'", "python -m tfsp.launch").split(" ", 1)
        if command[0].endswith(("tfsp/launch.py", "tfsp/report.py")):  # results written before command_line()
            command[0] = "python -m tfsp." + os.path.basename(command[0])[:-3]
        commands.append(f"- `{r['_file']}`: `{' '.join(command)}` (git {r.get('git_rev', '?')[:12]})")
    return "\n".join(lines + commands)


def benchmark_table(results_dir: str) -> str:
    path = os.path.join(results_dir, "benchmark-bibtex.json")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        bench = json.load(f)
    lines = ["", f"Refinement on Bibtex shapes (20 steps; `{bench['command']}`, load average "
                 f"{bench['machine'].get('load_average_1_5_15min', '?')}):", "",
             "| batch | compiled ms/example | XLA ms/example | eager loop ms/example | compiled ÷ eager |",
             "|---|---|---|---|---|"]
    for row in bench["refinement"]:
        lines.append(f"| {row['batch_size']} | {row['compiled_ms_per_example']:.4f} | "
                     f"{row['compiled_xla_ms_per_example']:.4f} | {row['eager_loop_ms_per_example']:.4f} | "
                     f"{row['compiled_speedup_over_eager']:.1f}× |")
    lines += ["", "| method | train ms/step (batch 20) | projected Bibtex schedule, s |", "|---|---|---|"]
    for row in bench["train_step"]:
        lines.append(f"| {row['method']} | {row['ms_per_step']:.1f} | {row['projected_train_seconds']:.0f} |")
    return "\n".join(lines)


def epoch_benchmark_table(results_dir: str) -> str:
    """Seconds per training epoch and per inference pass (launch/benchmark_epoch.py)."""
    path = os.path.join(results_dir, "benchmark-bibtex-epoch.json")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        bench = json.load(f)
    lines = ["", f"Seconds per Bibtex epoch, one run on one machine (`{bench['command']}`, load average "
                 f"{bench['machine'].get('load_average_1_5_15min', '?')}); the paper's seconds are on its own hardware, "
                 "compare the ratios:", "",
             "| method | train s/epoch | ÷ DVN | inference s (test split) | ÷ DVN | inference net alone s | "
             "paper train s/epoch | paper inference s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in bench["rows"]:
        paper = row.get("paper") or {}
        alone = row.get("inference_seconds_test_split_inference_net_alone")
        lines.append(
            f"| {row['method']} | {row['train_seconds_per_epoch']:.1f} | {row.get('train_ratio_to_dvn', float('nan')):.2f} | "
            f"{row['inference_seconds_test_split']:.2f} | {row.get('inference_ratio_to_dvn', float('nan')):.2f} | "
            f"{'–' if alone is None else f'{alone:.2f}'} | {paper.get('train_s_per_epoch', '–')} | "
            f"{paper.get('inference_s', '–')} |")
    return "\n".join(lines)


def step_curve_figure(records: List[Dict], path: str) -> bool:
    curves = [r for r in records if "step_curve" in r]
    if not curves:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task = defaultdict(list)
    for r in curves:
        by_task[r["task"]].append(r)
    fig, axes = plt.subplots(1, len(by_task), figsize=(5.5 * len(by_task), 4), squeeze=False)
    for ax, (task, group) in zip(axes[0], sorted(by_task.items())):
        for r in group:
            curve = r["step_curve"]
            metric = next(k for k in curve if k != "step")
            ax.plot(curve["step"], curve[metric], marker=".",
                    label=f"{r['method']} (seed {r['seed']})")
            ax.set_ylabel(f"test {metric} (%)")
        ax.set_xlabel("refinement step")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def update_readme(readme: str, table: str) -> None:
    with open(readme) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: no {START} ... {END} block to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(readme, f"{head}{START}\n{table}\n{END}{tail}")


def main(argv):
    del argv
    records = load_results(FLAGS.results_dir)
    table = (results_table(records) + "\n" + benchmark_table(FLAGS.results_dir)
             + epoch_benchmark_table(FLAGS.results_dir))
    if os.path.exists(os.path.join(FLAGS.results_dir, "step_curves.png")) or FLAGS.figures:
        table += "\n\n![metric after each refinement step](results/step_curves.png)"
    if os.path.exists(os.path.join(FLAGS.results_dir, "horses-qualitative.png")):
        table += "\n\n![horses: image, truth, FCN, LDRSP after 0/5/10/30 steps](results/horses-qualitative.png)"
    print(table)
    if FLAGS.figures:
        path = os.path.join(FLAGS.results_dir, "step_curves.png")
        if step_curve_figure(records, path):
            print(f"wrote {path}")
    if FLAGS.readme:
        update_readme(FLAGS.readme, table)
        print(f"updated {FLAGS.readme}")


if __name__ == "__main__":
    app.run(main)
