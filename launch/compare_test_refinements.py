"""Validation metrics of a trained model under other test-time refinements, to choose one on
validation (never on test); writes a results JSON with the command, git revision and each
variant's validation metrics.

    python launch/compare_test_refinements.py --model_dir=runs/horses-dvn-10k \
        --data_dir=../shared/data --output=results/horses-dvn-10k-test-refinements.json \
        --variant='30_decay0.1={"steps":30,"decay":0.1}' --variant='10_best={"best_iterate":true}'

Each --variant is name=JSON of RefineConfig fields replacing those of the model's test_refine
(an empty {} is the refinement it was configured with). The model is restored with the
configuration stored in its model dir. The chosen variant (best primary metric, the first
among ties) is then evaluated on test with `tfsp.launch --mode=evaluate --set test_refine...`.

--start_model_dir starts every refinement at another trained model's prediction (an FCN's
output, an LDRSP run's G(x)) instead of this model's own start, e.g. to ask whether a DVN's
value net can refine a feed-forward prediction; the variant {"steps": 0} is then that model.
"""

from __future__ import annotations

import json

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model dir of a finished run (its config.json and weights).")
flags.DEFINE_string("data_dir", None, "Folder with the dataset files (default: $TFSP_DATA_DIR).")
flags.DEFINE_multi_string("variant", [], "name=JSON of RefineConfig fields, e.g. 'decay={\"decay\":0.1}'.")
flags.DEFINE_string("output", None, "Results JSON to write.")
flags.DEFINE_string("start_model_dir", None, "Model dir of a finished run of the same task whose "
                    "prediction (its G(x) or feed-forward output) every refinement starts from.")
flags.mark_flags_as_required(["model_dir", "output"])


def start_with(model, config, start_model_dir: str, data_dir) -> None:
    """Makes `model` refine from the prediction of the run in start_model_dir (same task and
    input standardization) instead of its own initial output."""
    import numpy as np

    from tfsp import experiment

    start_config, _, start_model = experiment.restore_stored(start_model_dir, data_dir)
    if start_config.task != config.task:
        raise app.UsageError(f"--start_model_dir {start_model_dir} is a {start_config.task} run; "
                             f"--model_dir is {config.task}")
    own, other = model.standardize, start_model.standardize
    same = (own is None) == (other is None) and (own is None or (
        np.allclose(own.mean.numpy(), other.mean.numpy()) and np.allclose(own.std.numpy(), other.std.numpy())))
    if not same:
        raise app.UsageError(f"--start_model_dir {start_model_dir} standardizes its inputs otherwise "
                             f"than --model_dir; its prediction cannot start this model's refinement")
    model.initial_output = lambda x, training=False: (start_model.initial_output(x, training=False)[0], {})


def main(argv):
    del argv
    import dataclasses
    import os
    import sys
    import time

    from tfsp import evaluation, experiment, results

    variants = {}
    for text in FLAGS.variant:
        name, sep, fields = text.partition("=")
        if not sep:
            raise app.UsageError(f"--variant {text!r}: expected name=JSON")
        variants[name] = json.loads(fields)
    data_dir = FLAGS.data_dir or os.environ.get("TFSP_DATA_DIR")
    config, data, model = experiment.restore_stored(FLAGS.model_dir, data_dir)
    if data.validation is None:
        raise app.UsageError(f"{config.task} has no validation split to compare refinements on")
    if FLAGS.start_model_dir:
        start_with(model, config, FLAGS.start_model_dir, data_dir)
    configured = model.test_refine
    rows = {}
    for name, fields in variants.items():
        start = time.time()
        with model.test_settings(refine=dataclasses.replace(configured, **fields)):
            metrics = evaluation.evaluate(model, data.validation)
        rows[name] = {"fields": fields, "validation": metrics, "seconds": round(time.time() - start, 1)}
        print(name, {k: round(v, 2) for k, v in metrics.items()}, flush=True)
    primary = model.spec.primary_metric
    chosen = max(rows, key=lambda n: rows[n]["validation"][primary]) if rows else None
    record = {"task": config.task, "method": config.method, "model_dir": FLAGS.model_dir,
              "split": "validation", "primary_metric": primary, "configured_test_refine":
              dataclasses.asdict(configured), "start_model_dir": FLAGS.start_model_dir,
              "variants": rows, "chosen": chosen,
              **results.portable_command(sys.argv), "git_rev": results.git_revision()}
    results.write_json(FLAGS.output, record)
    print(f"chosen on validation: {chosen}; wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
