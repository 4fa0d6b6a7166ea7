"""Qualitative grids of test predictions, like the papers' figures.

    python -m tfsp.figures --task=horses --data_dir=... \
        --run=fcn:runs/horses-fcn --run=ldrsp:runs/horses-ldrsp --steps=0,5,10,30 \
        --output=results/horses-qualitative.png

Columns: the image, the ground truth, then for each --run its prediction; for the last
run (the refining method) its prediction after each of --steps refinement steps.
Each run directory must hold a finished run (its config.json and final weights).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def _define_flags():
    # Defined only when run as a program, so importing render_grid (tfsp.report) adds no flags.
    flags.DEFINE_string("task", None, "Task of the runs (for the data).")
    flags.DEFINE_string("data_dir", None, "Data folder (default: the runs' own).")
    flags.DEFINE_multi_string("run", [], "label:model_dir of a finished run; the last one is shown along its refinement.")
    flags.DEFINE_list("steps", ["0", "5", "10", "30"], "Refinement steps shown for the last run.")
    flags.DEFINE_integer("examples", 6, "Test examples (rows).")
    flags.DEFINE_string("output", None, "PNG file to write.")


def render_grid(runs, output, steps=(0, 5, 10, 30), examples: int = 6, data_dir=None) -> str:
    """Draws the grid for runs [(label, model_dir), ...] (the last one along its refinement) to
    the PNG `output`, written atomically; returns output."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tfsp import experiment
    from tfsp.summaries import colour

    steps = [int(s) for s in steps]
    labels = [label for label, _ in runs]
    # Runs given the same label (e.g. two DVN variants) are told apart by their folder's name.
    runs = [(f"{label} ({Path(model_dir).name})" if labels.count(label) > 1 else label, model_dir)
            for label, model_dir in runs]
    columns, titles = [], []
    images = truths = None
    for i, (label, model_dir) in enumerate(runs):
        _, data, model = experiment.restore_stored(model_dir, data_dir)
        x, y = next(iter(data.test.unbatch().batch(examples)))
        if images is None:
            images, truths = x.numpy(), y.numpy()
            columns += [images, colour(truths)]
            titles += ["image", "ground truth"]
        last = i == len(runs) - 1
        if last and "value" in model.infer(x[:1]):  # the last run refines: show its trajectory
            with model.test_settings(refine=dataclasses.replace(model.test_refine, steps=max(steps),
                                                                 tolerance=0.0)):
                trajectory = model.infer(x, return_trajectory=True)["trajectory"].numpy()
            for s in steps:
                columns.append(colour(trajectory[min(s, len(trajectory) - 1)]))
                titles.append(f"{label} step {s}")
        else:
            columns.append(colour(model.infer(x)["y"].numpy()))
            titles.append(label)
    rows, cols = len(images), len(columns)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            axes[r, c].imshow(np.clip(columns[c][r], 0, 1), interpolation="nearest")
            axes[r, c].axis("off")
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=7)
    fig.tight_layout()
    tmp = str(output) + ".tmp.png"
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, output)
    return str(output)


def main(argv):
    del argv
    if not FLAGS.run or not FLAGS.output:
        raise app.UsageError("--run (at least one) and --output are required")
    runs = [tuple(item.split(":", 1)) for item in FLAGS.run]
    render_grid(runs, FLAGS.output, FLAGS.steps, FLAGS.examples, FLAGS.data_dir)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
