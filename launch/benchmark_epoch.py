"""Seconds per training epoch and per inference pass on real Bibtex for SPEN, DVN and implicit-CD,
measured in one run on one machine; writes results/benchmark-bibtex-epoch.json.

    python launch/benchmark_epoch.py --data_dir=../shared/data --output=results/benchmark-bibtex-epoch.json

Each method is built with its tasks/bibtex.json configuration (implicit with --primary_loss=cd),
without pre-training epochs, so SPEN's epochs are SSVM epochs (with cost-augmented inference).
Training: `fit` over the Bibtex training split (4636 rows, batch 20) for --epochs epochs after a
few warm-up steps (tracing); the median epoch is reported. Inference: `predict` over the test
split (2515 rows) with the method's test-time procedure (refinement from zeros for SPEN / DVN, A(x)
refined on the energy for implicit, and A(x) alone), median of --repeats passes after a warm-up.
Shankar & Piratla report 28.2 / 32.1 / 27.7 s per training epoch and 3.8 / 3.8 / 1.8 s of
inference (SPEN / DVN / CD) on their hardware: compare ratios, not seconds.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with mulan/bibtex/bibtex.arff (default: $TFSP_DATA_DIR).")
flags.DEFINE_string("output", "results/benchmark-bibtex-epoch.json", "Where to write the JSON.")
flags.DEFINE_integer("epochs", 2, "Timed training epochs per method (median reported).")
flags.DEFINE_integer("repeats", 3, "Timed inference passes per method (median reported).")
flags.DEFINE_list("methods", ["spen", "dvn", "implicit:cd"], "method[:primary_loss] to time.")

PAPER = {"spen": {"train_s_per_epoch": 28.2, "inference_s": 3.8},
         "dvn": {"train_s_per_epoch": 32.1, "inference_s": 3.8},
         "implicit:cd": {"train_s_per_epoch": 27.7, "inference_s": 1.8}}


def main(argv):
    del argv
    import keras

    from tfsp import config as config_lib
    from tfsp import experiment, results
    from tfsp.datasets import build_task_data

    rows = []
    for entry in FLAGS.methods:
        method, _, loss = entry.partition(":")
        overrides = {"data": {"data_dir": FLAGS.data_dir}} if FLAGS.data_dir else {}
        if loss:
            overrides["primary_loss"] = loss
        # Time the methods' main phase: SPEN's SSVM epochs, not its logistic pre-training.
        if hasattr(config_lib.resolve("bibtex", method).settings, "pretrain_epochs"):
            overrides["pretrain_epochs"] = 0
        config = config_lib.resolve("bibtex", method, overrides)
        keras.utils.set_random_seed(config.seed)
        data = build_task_data(config.data, seed=config.seed)
        steps_per_epoch = int(data.train.cardinality().numpy())
        model = experiment.build_method(config, data.spec, steps_per_epoch)
        model.fit(data.train.take(3), epochs=1, verbose=0)  # warm-up: tracing
        epoch_seconds = []
        for _ in range(FLAGS.epochs):
            start = time.perf_counter()
            model.fit(data.train, epochs=1, verbose=0)
            epoch_seconds.append(time.perf_counter() - start)

        def inference_seconds():
            model.predict(data.test.take(1), verbose=0)  # warm-up: tracing
            times = []
            for _ in range(FLAGS.repeats):
                start = time.perf_counter()
                model.predict(data.test, verbose=0)
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        row = {"method": entry, "batch_size": config.data.batch_size, "train_steps_per_epoch": steps_per_epoch,
               "train_rows": data.sizes["train"], "test_rows": data.sizes["test"],
               "train_seconds_per_epoch": statistics.median(epoch_seconds),
               "train_seconds_per_epoch_all": epoch_seconds,
               "test_refine_steps": config.settings.test_refine.steps,
               "inference_seconds_test_split": inference_seconds()}
        if "inference_net_" in "".join(model.prediction_kinds()):
            refine_config = model.test_refine
            model.test_refine = dataclasses.replace(refine_config, steps=0)
            row["inference_seconds_test_split_inference_net_alone"] = inference_seconds()
            model.test_refine = refine_config
        row["paper"] = PAPER.get(entry)
        rows.append(row)
        print(row, flush=True)

    base = next((r for r in rows if r["method"] == "dvn"), None)
    if base is not None:
        for row in rows:
            row["train_ratio_to_dvn"] = row["train_seconds_per_epoch"] / base["train_seconds_per_epoch"]
            row["inference_ratio_to_dvn"] = (row["inference_seconds_test_split"]
                                             / base["inference_seconds_test_split"])
    record = {
        "benchmark": "seconds per training epoch and per test-split inference pass on Bibtex",
        "rows": rows,
        "command": results.command_line(sys.argv),
        "git_rev": results.git_revision(),
        "machine": results.machine(),
    }
    results.write_json(FLAGS.output, record)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
