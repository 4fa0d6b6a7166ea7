"""The report's figures (matplotlib, Agg), each curve labelled by its results file: training
curves per task, step curves, qualitative grids; the Markdown links to them and the step
curves' convergence table."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Dict, List


def relative(path: str, page_dir: str) -> str:
    """`path` as a link from a page in page_dir (Markdown wants forward slashes)."""
    return os.path.relpath(path, page_dir).replace(os.sep, "/")


def _stem(record: Dict) -> str:
    """The results file's name without .json: what tells a record's curves apart in a legend."""
    return os.path.splitext(os.path.basename(record["_path"]))[0]


def _curve_label(record: Dict, defaults=frozenset()) -> str:
    """`defaults`: paths of the records of their task file's default configuration."""
    return _stem(record) + (" (task default)" if record["_path"] in defaults else "")


def step_curve_figure(records: List[Dict], path: str, defaults=frozenset()) -> bool:
    """`path`: the metric after each refinement step, one curve per results file, labelled by
    its name (`defaults`: paths of default-configuration records, marked so)."""
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
        for r in sorted(group, key=lambda r: (r["_path"] not in defaults, _stem(r))):
            curve = r["step_curve"]
            metric = next(k for k in curve if k != "step")
            ax.plot(curve["step"], curve[metric], marker=".", label=_curve_label(r, defaults))
            ax.set_ylabel(f"test {metric} (%)")
        ax.set_xlabel("refinement step")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return True


CONVERGENCE_TOLERANCE = 0.1
"""Points of the metric: a step curve has converged at the first step within this of its best
(the ALEN paper's measure: 6 steps for ALEN, 18 for DVN)."""


def steps_to_converge(values: List[float], tolerance: float = CONVERGENCE_TOLERANCE) -> int:
    """The first step whose metric is within `tolerance` of the curve's best."""
    best = max(values)
    return next(step for step, value in enumerate(values) if value >= best - tolerance)


def convergence_table(records: List[Dict], page_dir: str, defaults=frozenset()) -> str:
    """Markdown: for each results file with a step curve, the metric before refinement (step 0),
    its best and at which step, the steps to within CONVERGENCE_TOLERANCE of the best, and the
    metric after the last step; task defaults first."""
    curves = sorted((r for r in records if "step_curve" in r),
                    key=lambda r: (r["task"], r["_path"] not in defaults, r["method"], _stem(r)))
    if not curves:
        return ""
    lines = [f"Steps of test-time refinement to come within {CONVERGENCE_TOLERANCE} points of each "
             "step curve's best (the ALEN paper's convergence measure), from each result's `step_curve`.",
             "", "| task | method | file | step 0 | best (step) | steps to within "
             f"{CONVERGENCE_TOLERANCE} | last step |", "|---|---|---|---|---|---|---|"]
    for r in curves:
        curve = r["step_curve"]
        metric = next(k for k in curve if k != "step")
        values = [float(v) for v in curve[metric]]
        best_step = max(range(len(values)), key=lambda k: (values[k], -k))
        link = f"[{_curve_label(r, defaults)}]({relative(r['_path'], page_dir)})"
        lines.append(f"| {r['task']} | {r['method']} | {link} | {metric} {values[0]:.2f} | "
                     f"{values[best_step]:.2f} ({best_step}) | {steps_to_converge(values)} | "
                     f"{values[-1]:.2f} ({len(values) - 1}) |")
    return "\n".join(lines)


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


def training_curves_figures(records: List[Dict], results_dir: str, defaults=frozenset()) -> List[str]:
    """results_dir/curves-<task>.png: per method (and variant), its training loss terms and its
    validation metric per epoch, from the results' "history": of the first seed of the task
    file's default configuration (`defaults`: those records' paths), else of the first seed;
    each column titled by its results file."""
    with_history = [r for r in records if r.get("history")]
    if not with_history:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task = defaultdict(dict)
    for r in sorted(with_history, key=lambda r: (r["_path"] not in defaults, r.get("seed", 0), r["_path"])):
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
            axes[0, column].set_title(f"{_curve_label(r, defaults)}: training losses (seed {r.get('seed', '?')})",
                                      fontsize=8)
            axes[0, column].set_xlabel("epoch")
            axes[0, column].legend(fontsize=6)
            for name in (k for k in history if k.startswith("val_")):
                axes[1, column].plot(_history_epochs(r, name, len(history[name])), history[name],
                                     marker=".", label=name[len("val_"):])
            axes[1, column].set_title(f"{_stem(r)}: validation metrics (%)", fontsize=8)
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


def qualitative_figures(records: List[Dict], results_dir: str, data_dir=None, defaults=frozenset()) -> List[str]:
    """results_dir/qualitative-<task>.png for each segmentation task (tfsp.figures.render_grid):
    the seed-0 run of every method whose model dir is present (that of the task file's default
    configuration when `defaults`, those records' paths, has one), the refining methods last."""
    from tfsp.figures import render_grid

    by_task = defaultdict(dict)
    for r in sorted(records, key=lambda r: r["_path"] in defaults):  # defaults last: they win
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


def figure_links(figures_dir: str, page_dir: str = ".") -> str:
    """Markdown image links to the figures present in figures_dir, relative to page_dir (the
    folder of the page that shows them)."""
    links = []
    names = sorted(os.listdir(figures_dir)) if os.path.isdir(figures_dir) else []

    def link(alt, name):
        links.append(f"![{alt}]({relative(os.path.join(figures_dir, name), page_dir)})")

    for name in names:
        if name.startswith("curves-") and name.endswith(".png"):
            link(f"{name[7:-4]}: training losses and validation metrics per epoch", name)
    if "step_curves.png" in names:
        link("metric after each refinement step", "step_curves.png")
    for name in names:
        if name.startswith("qualitative-") and name.endswith(".png"):
            link(f"{name[12:-4]}: test images, ground truth, predictions along the refinement", name)
    if "horses-qualitative.png" in names:
        link("horses: image, truth, FCN, LDRSP after 0/5/10/30 steps", "horses-qualitative.png")
    return "\n\n".join(links)
