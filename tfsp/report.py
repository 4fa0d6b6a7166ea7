"""Renders committed results: Markdown tables (optionally into README) and PNG figures.

    python -m tfsp.report --results_dir=results --output_dir=results --readme=README.md [--qualitative]

The tables are built only from `results/*.json`, each row linking the files it averages and
each file listed with the command that wrote it, so no measured number in the README is typed
by hand; the page is printed and written to `<output_dir>/results.md` (links relative to
output_dir; in the README, relative to the README):
  * per task, one row per method of `tasks/<task>.json`: the records of the configuration
    `tfsp.config.resolve(task, method)` selects (IGNORED_FIELDS aside), mean ± sample std over
    seeds, beside the task file's published figures, typed once with their source:
        "published": {"dvn": {"mean_iou": 84.1, "source": "..."}, "ldrsp": [{...}, {...}]}
    (metric names as in the results' "metrics"; "inference_net_<metric>" for G alone);
  * explorations: every other configuration, by the settings that differ from that default.
Figures (matplotlib, Agg), all in output_dir, each curve labelled by its results file:
  * curves-<task>.png: training loss terms and the validation metric per epoch ("history");
  * step_curves.png: the metric after each refinement step ("step_curve");
  * qualitative-<task>.png (--qualitative): test images, truth, each method's prediction and the
    refining method along its refinement; needs the runs' model dirs and the data.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import statistics
import sys
from collections import defaultdict
from typing import Dict, List

from absl import app, flags

from tfsp.report_benchmarks import (benchmark_table, epoch_benchmark_table, segmentation_benchmark_tables,
                                    updates_benchmark_tables)
from tfsp.report_figures import (convergence_table, figure_links, qualitative_figures, relative,
                                 step_curve_figure, training_curves_figures)
from tfsp.results import atomic_write_text, command_line

FLAGS = flags.FLAGS


def _define_flags():
    # Defined only when run as a program: importing tfsp.report (tests, other tools) beside
    # tfsp.launch, whose flags share names (--results_dir), must not define them twice.
    flags.DEFINE_string("results_dir", "results", "Folder of results/*.json.")
    flags.DEFINE_string("output_dir", None, "Folder the page (results.md) and the figures are written to "
                        "(default: --results_dir); its links are relative to it.")
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
            record["_path"] = os.path.abspath(path)
            records.append(record)
    return records


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
def _config_defaults(method: str, algorithm: str) -> Dict:
    """The defaults of the method's configuration by setting name (tfsp.config.setting_name), the
    method's settings beside the experiment's; read-only (shared by every call)."""
    from tfsp.config import ExperimentConfig, setting_name
    from tfsp.stored_config import leaf_fields

    return {setting_name(path): value
            for path, value in leaf_fields(ExperimentConfig(method=method, algorithm=algorithm)).items()}


# Config fields that do not change what a run trains or measures: where the data was read
# from and the test batch size, the seed (rows average over seeds), and an extra evaluation
# pass whose metrics are kept apart (metrics_by_crop_mode).
IGNORED_FIELDS = ("seed", "data.data_dir", "data.arff", "data.xml", "data.eval_batch_size", "compare_crop_modes")


def _unused_fields(flat: Dict) -> tuple:
    """The fields of `flat` (by setting name) that another setting makes unused
    (stored_config.unused_settings), so that they do not tell configurations apart."""
    from tfsp.stored_config import named_by, unused_settings

    prefixes = unused_settings(flat.get)
    return tuple(k for k in flat if named_by(k, prefixes))


def _signature(config: Dict):
    """A run's configuration without IGNORED_FIELDS (the rows' grouping key), hashable, by the
    names task files and --set use (an old flat record's settings by their new names). Fields
    a file lacks (added to the code after it was written) count at their defaults, i.e. as
    the code behaved before they existed; fields the code no longer has are no settings."""
    from tfsp.stored_config import settings_view

    defaults = _config_defaults(config.get("method", ""), config.get("algorithm", ""))
    maps = frozenset(k for k, v in defaults.items() if isinstance(v, dict))  # compared and shown whole
    view = _flatten(settings_view(config), whole=maps)  # an old flat record's settings by their new names
    flat = {**defaults, **{k: v for k, v in view.items() if k in defaults}}
    for field in IGNORED_FIELDS + _unused_fields(flat):
        flat.pop(field, None)
    return tuple(sorted((k, json.dumps(_canonical(v), sort_keys=True)) for k, v in flat.items()))


def _default_signature(task: str, method: str):
    """The signature of the configuration tasks/<task>.json selects for `method`, or None when
    there is no such task file or method."""
    from tfsp import config as config_lib

    try:
        return _signature(config_lib.resolve(task, method).to_dict())
    except config_lib.ConfigError:
        return None


def _task_file(task: str):
    """tasks/<task>.json's content, or None."""
    from tfsp import config as config_lib

    try:
        return config_lib.load_task(task)
    except config_lib.ConfigError:
        return None


def published_of(content: Dict, method: str) -> List[Dict]:
    """The task file's published figures for `method`: a list of {metric: value, ...,
    "source": ...}; metric names as in the results' "metrics", "inference_net_<metric>" for
    the inference network alone."""
    from tfsp.config import ConfigError

    entries = (content.get("published") or {}).get(method, [])
    entries = [entries] if isinstance(entries, dict) else entries
    for entry in entries:
        figures = [v for k, v in entry.items() if k != "source"] if isinstance(entry, dict) else []
        if not figures or not entry.get("source") or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in figures):
            raise ConfigError(f"{content['_path']}: published.{method}: each entry needs a \"source\" "
                              f"and numeric metric values, got {entry!r}")
    return entries


def _setting(value: str) -> str:
    """A canonical JSON value as written in a settings list: strings bare (unless empty)."""
    parsed = json.loads(value)
    return parsed if isinstance(parsed, str) and parsed else value


def _mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _metric_values(group: List[Dict], metric: str) -> List[float]:
    """The group's test values of `metric`; "inference_net_<metric>": of the inference network alone."""
    prefix = "inference_net_"
    if metric.startswith(prefix):
        return [g["metrics_inference_net"][metric[len(prefix):]] for g in group
                if metric[len(prefix):] in g.get("metrics_inference_net", {})]
    return [g["metrics"][metric] for g in group if metric in g["metrics"]]


def _by_metric(entry: Dict, cell) -> str:
    """A published entry's figures as "mean_iou <cell(metric, value)>, G alone <...>", one
    metric after another; cell(metric, published value) renders one figure."""
    prefix = "inference_net_"
    parts = []
    for metric in dict.fromkeys(k[len(prefix):] if k.startswith(prefix) else k for k in entry if k != "source"):
        figures = [cell(k, entry[k]) for k in (metric, prefix + metric) if k in entry]
        labels = [""] * (metric in entry) + ["G alone "] * (prefix + metric in entry)
        parts.append(f"{metric} " + ", ".join(label + figure for label, figure in zip(labels, figures)))
    return "; ".join(parts)


def _link(record: Dict, page_dir: str) -> str:
    return f"[{os.path.basename(record['_path'])}]({relative(record['_path'], page_dir)})"


def _seeds(group: List[Dict]) -> str:
    return f"{len(group)}: {', '.join(str(g.get('seed', '?')) for g in group)}"


def _train_seconds(group: List[Dict]) -> str:
    seconds = [g["train_seconds"] for g in group if "train_seconds" in g]  # none for --mode=evaluate
    return f"{statistics.mean(seconds):.0f}" if seconds else "–"


def _chosen_settings(group: List[Dict]) -> str:
    """The test-time steps and mirror choices the group's runs made on validation."""
    notes = []
    for field, name in (("refine_steps_selected", "steps"), ("mirror_selected", "mirror")):
        chosen = sorted({g[field]["chosen"] for g in group if field in g})
        if chosen:
            notes.append(f"{name} chosen: {chosen}")
    return f" ({'; '.join(notes)})" if notes else ""


class _Groups:
    """Records grouped by (task, method, configuration), and each task file's default
    configuration of each method (resolved once)."""

    def __init__(self, records: List[Dict]):
        self.groups = defaultdict(list)
        for r in sorted(records, key=lambda r: (r.get("seed", 0), r["_path"])):
            config = {"task": r["task"], "method": r["method"], **r.get("config", {})}
            self.groups[(r["task"], r["method"], _signature(config))].append(r)
        self.tasks = {task: _task_file(task) for task in sorted({r["task"] for r in records})}
        self.defaults = {(t, m): _default_signature(t, m)
                         for t, m in {(r["task"], r["method"]) for r in records}
                         | {(t, m) for t, c in self.tasks.items() if c for m in c.get("methods", {})}}
        # Metric columns in the order the task's files first name them.
        self.metrics = defaultdict(list)
        for r in sorted(records, key=lambda r: r["_path"]):
            self.metrics[r["task"]] += [m for m in r["metrics"] if m not in self.metrics[r["task"]]]

    def methods(self, task: str) -> List[str]:
        """The task file's methods in its order, then methods only results name."""
        listed = list((self.tasks.get(task) or {}).get("methods", {}))
        return listed + sorted({m for t, m, _ in self.groups if t == task} - set(listed))

    def default_group(self, task: str, method: str) -> List[Dict]:
        default = self.defaults.get((task, method))
        return self.groups.get((task, method, default), []) if default else []

    def explorations(self) -> List:
        order = {(t, m): i for i, (t, m) in enumerate((t, m) for t in self.tasks for m in self.methods(t))}
        rows = [(key, group) for key, group in self.groups.items()
                if key[2] != self.defaults.get(key[:2])]
        return sorted(rows, key=lambda kv: (order[kv[0][:2]], self.differing(*kv[0])))

    def differing(self, task: str, method: str, signature) -> str:
        """The settings of `signature` that differ from the task file's default, as k=v."""
        code_default = dict(_signature({"task": task, "method": method}))
        default = dict(self.defaults.get((task, method)) or code_default)  # no task file: the code's
        # Signatures hold every config field (defaults filled in) but those another setting
        # makes unused (_unused_fields); one the default lacks shows where it differs from
        # the code's default.
        return ", ".join(f"{k}={_setting(v)}" for k, v in signature
                         if v != default.get(k, code_default.get(k)))


def headline_tables(records: List[Dict], page_dir: str = ".", groups: "_Groups" = None) -> str:
    """Per task, one row per method of tasks/<task>.json: its default configuration's results
    (mean ± sample std over seeds), the published figures and the difference."""
    groups = groups or _Groups(records)
    blocks = []
    for task, content in groups.tasks.items():
        if content is None:
            continue  # no task file, so no default configuration: all its rows are explorations
        metrics = groups.metrics[task]
        alone = [m for m in metrics
                 if any(_metric_values(groups.default_group(task, method), "inference_net_" + m)
                        for method in groups.methods(task))]
        header = ["method", *metrics, *(f"{m}, G alone" for m in alone), "published",
                  "result − published", "n: seeds", "train s", "records"]
        lines = [f"**{task}** (`tasks/{task}.json`)", "", "| " + " | ".join(header) + " |",
                 "|" + "---|" * len(header)]
        for method in groups.methods(task):
            group = groups.default_group(task, method)
            published = published_of(content, method)
            shown = [_by_metric(e, lambda k, v: f"{v:g}") + f" ({e['source']})" for e in published]
            if not group:
                others = sum(1 for (t, m, _) in groups.groups if (t, m) == (task, method))
                note = "no run of the default configuration" + (
                    f" ({others} other configuration{'s' * (others > 1)} under Explorations)" if others else "")
                cells = [method, note, *[""] * (len(metrics) + len(alone) - 1),
                         "<br>".join(shown) or "–", "–", "–", "–", "–"]
            else:
                def difference(metric, published_value):
                    values = _metric_values(group, metric)
                    return f"{statistics.mean(values) - published_value:+.2f}" if values else "not measured"

                differences = [_by_metric(e, difference) for e in published]
                cells = [method + _chosen_settings(group),
                         *(_mean_std(v) if (v := _metric_values(group, m)) else "–" for m in metrics),
                         *(_mean_std(v) if (v := _metric_values(group, "inference_net_" + m)) else "–"
                           for m in alone),
                         "<br>".join(shown) or "–", "<br>".join(differences) or "–",
                         _seeds(group), _train_seconds(group), ", ".join(_link(g, page_dir) for g in group)]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def explorations_table(records: List[Dict], page_dir: str = ".", groups: "_Groups" = None) -> str:
    """Every configuration other than a task file's default: the settings that differ from
    it, its results and seeds."""
    groups = groups or _Groups(records)
    lines = ["| task | method | settings that differ from the task file's default | results | G alone | "
             "n: seeds | train s | records |", "|---|---|---|---|---|---|---|---|"]
    for (task, method, signature), group in groups.explorations():
        metrics = [m for m in groups.metrics[task] if _metric_values(group, m)]
        alone = [m for m in metrics if _metric_values(group, "inference_net_" + m)]
        lines.append(
            f"| {task} | {method} | {groups.differing(task, method, signature)}{_chosen_settings(group)} | "
            + "; ".join(f"{m} {_mean_std(_metric_values(group, m))}" for m in metrics) + " | "
            + ("; ".join(f"{m} {_mean_std(_metric_values(group, 'inference_net_' + m))}" for m in alone) or "–")
            + f" | {_seeds(group)} | {_train_seconds(group)} | {', '.join(_link(g, page_dir) for g in group)} |")
    return "\n".join(lines)


def results_table(records: List[Dict], page_dir: str = ".") -> str:
    """The headline tables (task files' default configurations beside the published figures),
    the explorations table and the commands that wrote every record."""
    groups = _Groups(records)
    text = ["### Default configurations", "",
            "One row per method of each task file: the runs of the configuration "
            "`tfsp.config.resolve(task, method)` selects (seed, data location and extra evaluation "
            "passes aside), mean ± sample standard deviation over seeds; \"G alone\" is the inference "
            "network without refinement. Published figures are typed once, with their source, in the "
            "task file's `published` section; a difference is shown only for a measure the runs report.",
            "", headline_tables(records, page_dir, groups), "", "### Explorations", "",
            "Every other configuration, by the settings in which it differs from its task file's default.",
            "", explorations_table(records, page_dir, groups), "",
            "<details><summary>Commands that wrote them</summary>", ""]
    for r in sorted(records, key=lambda r: r["_path"]):
        command = r.get("command", "?").replace("'python -m tfsp.launch'", "python -m tfsp.launch").split(" ", 1)
        if command[0].endswith(("tfsp/launch.py", "tfsp/report.py")):  # results written before command_line()
            command[0] = "python -m tfsp." + os.path.basename(command[0])[:-3]
        text.append(f"- `{relative(r['_path'], page_dir)}`: `{' '.join(command)}` (git {r.get('git_rev', '?')[:12]})")
    return "\n".join(text + ["", "</details>"])


def update_readme(readme: str, table: str) -> None:
    with open(readme) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: no {START} ... {END} block to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(readme, f"{head}{START}\n{table}\n{END}{tail}")


def results_page(records: List[Dict], results_dir: str, figures_dir: str, page_dir: str,
                 command: str = "", defaults=frozenset()) -> str:
    """The Markdown of the results (tables, refinement convergence, benchmarks, figure links) for
    a page in page_dir; `defaults`: paths of the task defaults' records."""
    benchmarks = [benchmark_table(results_dir), epoch_benchmark_table(results_dir),
                  segmentation_benchmark_tables(results_dir), updates_benchmark_tables(results_dir)]
    benchmarks = [b.strip("\n") for b in benchmarks if b.strip()]
    links = figure_links(figures_dir, page_dir)
    blocks = [f"Generated from `{relative(os.path.join(results_dir, '*.json'), page_dir)}` by `{command}`." if command else "",
              results_table(records, page_dir),
              *(["### Refinement convergence", convergence] if (convergence := convergence_table(
                  records, page_dir, defaults)) else []),
              "### Timing benchmarks" if benchmarks else "", *benchmarks,
              "### Figures" if links else "", links]
    return "\n\n".join(b for b in blocks if b)


def main(argv):
    del argv
    output_dir = FLAGS.output_dir or FLAGS.results_dir
    records = load_results(FLAGS.results_dir)
    groups = _Groups(records)
    defaults = frozenset(r["_path"] for t, c in groups.tasks.items() if c
                         for m in groups.methods(t) for r in groups.default_group(t, m))
    written = []
    if FLAGS.figures:
        path = os.path.join(output_dir, "step_curves.png")
        os.makedirs(output_dir, exist_ok=True)
        if step_curve_figure(records, path, defaults):
            written.append(path)
        written += training_curves_figures(records, output_dir, defaults)
    if FLAGS.qualitative:
        written += qualitative_figures(records, output_dir, FLAGS.qualitative_data_dir, defaults)
    command = command_line(sys.argv)
    page = results_page(records, FLAGS.results_dir, output_dir, output_dir, command, defaults)
    print(page)
    atomic_write_text(os.path.join(output_dir, "results.md"), page + "\n")
    for path in written:
        print(f"wrote {path}")
    if FLAGS.readme:
        readme_dir = os.path.dirname(os.path.abspath(FLAGS.readme))
        update_readme(FLAGS.readme, results_page(records, FLAGS.results_dir, output_dir, readme_dir, command,
                                                   defaults))
        print(f"updated {FLAGS.readme}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
