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
"""

from __future__ import annotations

import json

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model dir of a finished run (its config.json and weights).")
flags.DEFINE_string("data_dir", None, "Folder with the dataset files (default: $TFSP_DATA_DIR).")
flags.DEFINE_multi_string("variant", [], "name=JSON of RefineConfig fields, e.g. 'decay={\"decay\":0.1}'.")
flags.DEFINE_string("output", None, "Results JSON to write.")
flags.mark_flags_as_required(["model_dir", "output"])


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
              dataclasses.asdict(configured), "variants": rows, "chosen": chosen,
              **results.portable_command(sys.argv), "git_rev": results.git_revision()}
    results.write_json(FLAGS.output, record)
    print(f"chosen on validation: {chosen}; wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
