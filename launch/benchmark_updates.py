"""Seconds per training update (one `train_step`, compiled as `fit` compiles it) in float32
and under mixed precision; writes results/benchmark-updates-<task>.json.

    python launch/benchmark_updates.py --task=horses --methods=fcn,dvn,ldrsp \
        --set crop_mode=average --set train_with_test_refine=true --set adversarial.steps=3

The task file's settings for each method, plus the --set overrides (applied to every method),
with untrained networks of the task's shapes on random batches of the training batch size
(speed does not depend on the weights or the data). Timings are the median of repeated runs
of `--updates` consecutive steps after a warm-up; the machine's load average is recorded,
since other jobs on the cores slow every number.
"""

from __future__ import annotations

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("task", "horses", "Task file (tasks/<task>.json).")
flags.DEFINE_list("methods", ["fcn", "dvn"], "Methods to time.")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies to compare.")
flags.DEFINE_integer("updates", 10, "Consecutive updates per timed run.")
flags.DEFINE_integer("repeats", 3, "Timed runs (median reported).")
flags.DEFINE_multi_string("set", [], "Config overrides for every method, as for tfsp.launch.")
flags.DEFINE_string("output", None, "Default: results/benchmark-updates-<task>.json.")


def main(argv):
    del argv
    import sys

    import keras
    import numpy as np
    import tensorflow as tf

    from tfsp import config as config_lib
    from tfsp import experiment, results
    from tfsp.benchmarking import median_seconds
    from tfsp.spec import binary_segmentation_spec, multiclass_segmentation_spec, multilabel_spec

    keras.utils.set_random_seed(0)
    overrides = config_lib.parse_assignments(FLAGS.set)
    rows = []
    for method in FLAGS.methods:
        for policy in FLAGS.policies:
            cfg = config_lib.resolve(FLAGS.task, method, dict(
                overrides, mixed_precision="" if policy == "float32" else policy))
            data = cfg.data
            if data.loader == "horses":
                spec = binary_segmentation_spec(FLAGS.task, data.image_size, data.crop_size, data.crop_grid)
                shape, out = (data.crop_size, data.crop_size, 3), (data.crop_size, data.crop_size, 1)
            elif data.loader == "lfw":
                spec = multiclass_segmentation_spec(FLAGS.task, data.image_size, 3, data.crop_size,
                                                    data.crop_grid)
                shape, out = (data.crop_size, data.crop_size, 3), (data.crop_size, data.crop_size, 3)
            else:
                raise app.UsageError("benchmark_updates times the segmentation tasks (horses, lfw)")
            model = experiment.build_method(cfg, spec, steps_per_epoch=1)
            rng = np.random.RandomState(0)
            x = tf.constant(rng.rand(data.batch_size, *shape), tf.float32)
            y = tf.constant(rng.rand(data.batch_size, *out) > 0.5, tf.float32)
            if spec.multiclass:
                y = tf.one_hot(tf.argmax(y, -1), out[-1])
            step = tf.function(model.train_step, jit_compile=cfg.jit_compile)  # as fit compiles it

            def run():
                for _ in range(FLAGS.updates):
                    logs = step((x, y))
                float(logs["loss"])  # wait for the last step

            run()  # trace
            seconds = median_seconds(run, FLAGS.repeats) / FLAGS.updates
            settings = cfg.settings
            inference = (settings.test_refine if getattr(settings, "train_with_test_refine", False)
                         else getattr(settings, "train_refine", None))
            adversarial = getattr(settings, "adversarial", None)
            rows.append({"method": method, "policy": policy, "jit_compile": cfg.jit_compile,
                         "seconds_per_update": round(seconds, 4), "batch_size": data.batch_size,
                         "train_refine_steps": inference.steps if inference else 0,
                         "adversarial_steps": adversarial.steps if adversarial else 0})
            print(rows[-1], flush=True)
    for row in rows:
        base = [r for r in rows if r["method"] == row["method"] and r["policy"] == "float32"]
        if base and row["policy"] != "float32":
            row["speedup_vs_float32"] = round(base[0]["seconds_per_update"] / row["seconds_per_update"], 2)
    record = {"task": FLAGS.task, "rows": rows, "overrides": FLAGS.set,
              "command": results.command_line(sys.argv), "git_rev": results.git_revision(),
              "machine": results.machine()}
    output = FLAGS.output or f"results/benchmark-updates-{FLAGS.task}.json"
    results.write_json(output, record)
    print(f"wrote {output}")


if __name__ == "__main__":
    app.run(main)
