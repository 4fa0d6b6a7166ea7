"""Renders committed results: a Markdown table (optionally into README) and PNG figures.

    python -m tfsp.report --results_dir=results --readme=README.md [--qualitative]

The table is built only from `results/*.json`, each row with the command that wrote
it, so no number in the README is typed by hand; it is printed and written to
`results/results.md`. Figures (matplotlib, Agg), all in the results folder:
  * curves-<task>.png: training loss terms and the validation metric per epoch ("history");
  * step_curves.png: the metric after each refinement step ("step_curve");
  * qualitative-<task>.png (--qualitative): test images, truth, each method's prediction and the
    refining method along its refinement; needs the runs' model dirs and the data.
"""

from __future__ import annotations

import dataclasses
import functools
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
flags.DEFINE_bool("qualitative", False, "Also draw qualitative grids of the segmentation tasks from the "
                  "runs' model dirs (--model_dir of each result's command; needs the data, see --qualitative_data_dir).")
flags.DEFINE_string("qualitative_data_dir", None, "--qualitative: data folder (default: the runs' own).")

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


@functools.lru_cache(maxsize=None)
def _map_fields() -> frozenset:
    """Config fields that are maps (e.g. sample_weights), compared and shown whole; the other
    dict-valued fields are nested settings, compared field by field."""
    from tfsp.config import ExperimentConfig

    defaults = ExperimentConfig()
    return frozenset(f.name for f in dataclasses.fields(ExperimentConfig)
                     if isinstance(getattr(defaults, f.name), dict))


def _flatten(config: Dict, prefix: str = "", whole=frozenset()) -> Dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and prefix + key not in whole:
            flat.update(_flatten(value, f"{prefix}{key}.", whole))
        else:
            flat[prefix + key] = value
    return flat


def _canonical(value):
    """1 and 1.0 (as written by --set and by json) are the same setting."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


@functools.lru_cache(maxsize=None)
def _config_defaults() -> Dict:
    """Read-only (shared by every call)."""
    from tfsp.config import ExperimentConfig

    return _flatten(ExperimentConfig().to_dict(), whole=_map_fields())


def _signature(record: Dict):
    """The run's configuration without the seed and the data's location (the rows' grouping
    key), hashable. Fields a file lacks (added to the code after it was written) count at
    their defaults, i.e. as the code behaved before they existed."""
    flat = {**_config_defaults(), **_flatten(record.get("config", {}), whole=_map_fields())}
    flat.pop("seed", None)
    flat.pop("data.data_dir", None)
    flat.pop("compare_crop_modes", None)  # an extra evaluation pass; the metrics do not depend on it
    return tuple(sorted((k, json.dumps(_canonical(v), sort_keys=True)) for k, v in flat.items()))


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
            # The signatures hold the same fields (every config field, defaults filled in).
            differing = sorted(k for k in others[0] if len({o[k] for o in others}) > 1
                               and k != "select_refine_steps")  # named below with the steps chosen
            settings = dict(signature)
            variant = ", ".join([variant] * bool(variant) + [f"{k}={settings.get(k)}" for k in differing])
        if group[0].get("config", {}).get("select_refine_steps"):
            chosen = sorted({g["refine_steps_selected"]["chosen"] for g in group if "refine_steps_selected" in g})
            variant = ", ".join([variant] * bool(variant) + [f"refinement steps chosen on validation: {chosen}"])
        for metric in group[0]["metrics"]:
            final = [g["metrics"][metric] for g in group]
            alone = [g["metrics_inference_net"][metric] for g in group if "metrics_inference_net" in g]
            # Records of --mode=evaluate carry no training time.
            seconds = [g["train_seconds"] for g in group if "train_seconds" in g]
            lines.append(
                f"| {task} | {method}{(' ' + variant) if variant else ''} | {metric} | {_fmt(final)} | "
                f"{_fmt(alone) if alone else '–'} | "
                f"{f'{statistics.mean(seconds):.0f}' if seconds else '–'} | "
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


def segmentation_benchmark_tables(results_dir: str) -> str:
    """One table per launch/benchmark_segmentation.py output (benchmark-<task>.json)."""
    blocks = []
    for path in sorted(glob.glob(os.path.join(results_dir, "benchmark-*.json"))):
        with open(path) as f:
            bench = json.load(f)
        rows = bench.get("refinement", [])
        if not rows or "crops_per_image" not in rows[0]:
            continue  # the Bibtex benchmark has its own table
        eager = "eager_loop_ms_per_image" in rows[0]
        lines = ["", f"Test-time refinement, {bench['benchmark']} (`{bench['command']}`, load average "
                     f"{bench['machine'].get('load_average_1_5_15min', '?')}):", "",
                 "| method | crops | images | steps × η | compiled ms/image | XLA ms/image"
                 + (" | eager loop ms/image | compiled ÷ eager |" if eager else " |"),
                 "|---|---|---|---|---|---" + ("|---|---|" if eager else "|")]
        for row in rows:
            line = (f"| {row['method']} ({row['crop_mode']}) | {row['crops_per_image']} × {row['crop_size']}² | "
                    f"{row['images']} | {row['steps']} × {row['step_size']:g} | "
                    f"{row['compiled_ms_per_image']:.2f} | {row['compiled_xla_ms_per_image']:.2f} |")
            if eager:
                line += f" {row['eager_loop_ms_per_image']:.2f} | {row['compiled_speedup_over_eager']:.1f}× |"
            lines.append(line)
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


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


def _save(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _history_epochs(record: Dict, name: str, length: int) -> List[int]:
    """The epoch numbers (1-based) of a history series: every epoch run for training terms; for
    validation ("val_*") the epochs where Keras validated (every `validation_every`, while the
    validation rows were held out)."""
    first = int(record.get("initial_epoch") or 0)
    run = list(range(first + 1, first + 1 + len(record["history"].get("loss", []))))
    if name.startswith("val_"):
        config = record.get("config", {})
        every = int(config.get("validation_every", 1) or 1)
        held_out = int(config.get("epochs", len(run)) or len(run))
        validated = [e for e in run if e % every == 0 and e <= held_out]
        if len(validated) == length:
            return validated
    return run[:length] if len(run) >= length else list(range(1, length + 1))


def training_curves_figures(records: List[Dict], results_dir: str) -> List[str]:
    """results_dir/curves-<task>.png: per method (first seed), its training loss terms and its
    validation metric per epoch, from the results' "history"."""
    with_history = [r for r in records if r.get("history")]
    if not with_history:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task = defaultdict(dict)
    for r in sorted(with_history, key=lambda r: (r.get("seed", 0), r["_file"])):
        by_task[r["task"]].setdefault(r["method"] + (f" {r['variant']}" if r.get("variant") else ""), r)
    written = []
    for task, methods in sorted(by_task.items()):
        fig, axes = plt.subplots(2, len(methods), figsize=(4.5 * len(methods), 6.5), squeeze=False)
        for column, (method, r) in enumerate(sorted(methods.items())):
            history = r["history"]
            losses = [k for k in history if not k.startswith("val_")
                      and ("loss" in k or k.startswith(("d_", "g_", "cross_entropy")))]
            for name in losses:
                axes[0, column].plot(_history_epochs(r, name, len(history[name])), history[name], label=name)
            axes[0, column].set_title(f"{task} {method}: training losses (seed {r.get('seed', '?')})", fontsize=9)
            axes[0, column].set_xlabel("epoch")
            axes[0, column].legend(fontsize=6)
            for name in (k for k in history if k.startswith("val_")):
                axes[1, column].plot(_history_epochs(r, name, len(history[name])), history[name],
                                     marker=".", label=name[len("val_"):])
            axes[1, column].set_title(f"{task} {method}: validation metrics (%)", fontsize=9)
            axes[1, column].set_xlabel("epoch")
            axes[1, column].legend(fontsize=6)
            for ax in axes[:, column]:
                ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(results_dir, f"curves-{task}.png")
        _save(fig, path)
        written.append(path)
    return written


def _model_dir_of(record: Dict) -> str:
    import shlex

    for arg in shlex.split(record.get("command", "")):
        if arg.startswith("--model_dir="):
            return arg.split("=", 1)[1]
    return f"runs/{record['task']}-{record['method']}"


def qualitative_figures(records: List[Dict], results_dir: str, data_dir=None) -> List[str]:
    """results_dir/qualitative-<task>.png for each segmentation task (tfsp.figures.render_grid):
    the seed-0 run of every method whose model dir is present, the refining methods last."""
    from tfsp.figures import render_grid

    by_task = defaultdict(dict)
    for r in records:
        is_segmentation = r.get("config", {}).get("data", {}).get("loader", "mulan") != "mulan"
        model_dir = _model_dir_of(r)
        if is_segmentation and r.get("seed", 0) == 0 and os.path.exists(os.path.join(model_dir, "config.json")):
            by_task[r["task"]][r["method"]] = model_dir
    written = []
    for task, runs in sorted(by_task.items()):
        order = sorted(runs, key=lambda m: (m != "fcn" and m != "feedforward", m))
        path = os.path.join(results_dir, f"qualitative-{task}.png")
        render_grid([(m, runs[m]) for m in order], path, examples=6, data_dir=data_dir)
        written.append(path)
    return written


def figure_links(results_dir: str) -> str:
    """Markdown image links to the figures present in results_dir (paths relative to the README)."""
    links = []
    names = sorted(os.listdir(results_dir)) if os.path.isdir(results_dir) else []
    for name in names:
        if name.startswith("curves-") and name.endswith(".png"):
            links.append(f"![{name[7:-4]}: training losses and validation metrics per epoch]({results_dir}/{name})")
    if "step_curves.png" in names:
        links.append(f"![metric after each refinement step]({results_dir}/step_curves.png)")
    for name in names:
        if name.startswith("qualitative-") and name.endswith(".png"):
            links.append(f"![{name[12:-4]}: test images, ground truth, predictions along the refinement]"
                         f"({results_dir}/{name})")
    if "horses-qualitative.png" in names:
        links.append(f"![horses: image, truth, FCN, LDRSP after 0/5/10/30 steps]({results_dir}/horses-qualitative.png)")
    return "\n\n".join(links)


def main(argv):
    del argv
    records = load_results(FLAGS.results_dir)
    written = []
    if FLAGS.figures:
        path = os.path.join(FLAGS.results_dir, "step_curves.png")
        if step_curve_figure(records, path):
            written.append(path)
        written += training_curves_figures(records, FLAGS.results_dir)
    if FLAGS.qualitative:
        written += qualitative_figures(records, FLAGS.results_dir, FLAGS.qualitative_data_dir)
    table = (results_table(records) + "\n" + benchmark_table(FLAGS.results_dir)
             + epoch_benchmark_table(FLAGS.results_dir)
             + "\n" + segmentation_benchmark_tables(FLAGS.results_dir))
    links = figure_links(FLAGS.results_dir)
    if links:
        table += "\n\n" + links
    print(table)
    atomic_write_text(os.path.join(FLAGS.results_dir, "results.md"), table + "\n")
    for path in written:
        print(f"wrote {path}")
    if FLAGS.readme:
        update_readme(FLAGS.readme, table)
        print(f"updated {FLAGS.readme}")


if __name__ == "__main__":
    app.run(main)
