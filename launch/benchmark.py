"""Refinement and train-step throughput on Bibtex shapes; writes results/benchmark-bibtex.json.

    python launch/benchmark.py --output=results/benchmark-bibtex.json

Refinement: the DVN energy of the Bibtex task (1836 features, 159 labels, 150
hidden units, 16 pairwise units), 20 steps from zeros, for batch sizes 32, 256 and
2515, run as (a) `refine` inside a `tf.function` (one `tf.while_loop`), (b) the same
with XLA, (c) an eager Python loop calling the same step functions once per step.
Train steps: examples/s of each method's compiled `train_step` in `fit`.
Timings are the median of repeated runs after a warm-up (tracing, XLA compilation).
"""

from __future__ import annotations

import math
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "results/benchmark-bibtex.json", "Where to write the JSON.")
flags.DEFINE_list("batch_sizes", ["32", "256", "2515"], "Refinement batch sizes.")
flags.DEFINE_integer("steps", 20, "Refinement steps.")
flags.DEFINE_integer("repeats", 5, "Timed repetitions (median reported).")
flags.DEFINE_integer("train_steps", 60, "Timed train steps per method.")


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf

    from tfsp import config as config_lib
    from tfsp.benchmarking import median_seconds
    from tfsp import experiment, results
    from tfsp.networks import MultiLabelEnergy
    from tfsp.refine import RefineConfig, ascent_step, project, refine, value_and_gradient
    from tfsp.spec import multilabel_spec

    keras.utils.set_random_seed(0)
    num_features, num_labels = 1836, 159
    energy = MultiLabelEnergy(num_labels, hidden=(150,), num_pairwise=16)
    config = RefineConfig(steps=FLAGS.steps, step_size=0.5)
    rng = np.random.RandomState(0)

    def value_fn_of(x):
        context = energy.precompute(x)
        return lambda y: tf.sigmoid(energy.score(context, y))

    @tf.function(reduce_retracing=True)
    def graph_refine(x):
        return refine(value_fn_of(x), tf.zeros((tf.shape(x)[0], num_labels)), config).y

    @tf.function(jit_compile=True, reduce_retracing=True)
    def xla_refine(x):
        return refine(value_fn_of(x), tf.zeros((tf.shape(x)[0], num_labels)), config).y

    def eager_loop(x):
        value_fn = value_fn_of(x)
        y = project(tf.zeros((x.shape[0], num_labels)), config.projection)
        for _ in range(config.steps):
            _, gradient = value_and_gradient(value_fn, y)
            y = ascent_step(y, gradient, config)
        return y

    refinement = []
    for batch in [int(b) for b in FLAGS.batch_sizes]:
        x = tf.constant((rng.rand(batch, num_features) < 0.05).astype(np.float32))
        np.testing.assert_allclose(graph_refine(x).numpy(), eager_loop(x).numpy(), atol=1e-4)
        row = {"batch_size": batch, "steps": config.steps}
        for name, fn in (("compiled", graph_refine), ("compiled_xla", xla_refine), ("eager_loop", eager_loop)):
            seconds = median_seconds(lambda: fn(x).numpy(), FLAGS.repeats)
            row[f"{name}_examples_per_s"] = batch / seconds
            row[f"{name}_ms_per_example"] = 1000 * seconds / batch
        row["compiled_speedup_over_eager"] = row["compiled_examples_per_s"] / row["eager_loop_examples_per_s"]
        row["xla_speedup_over_eager"] = row["compiled_xla_examples_per_s"] / row["eager_loop_examples_per_s"]
        refinement.append(row)
        print(row, flush=True)

    # Train-step throughput of each method with the Bibtex task configuration.
    x = (rng.rand(2000, num_features) < 0.05).astype(np.float32)
    y = (rng.rand(2000, num_labels) < 0.015).astype(np.float32)
    spec = multilabel_spec("bibtex", num_features, num_labels, feature_mean=x.mean(0), feature_std=x.std(0) + 1e-6)
    training = []
    for method in ("feedforward", "dvn", "ldrsp"):
        cfg = config_lib.resolve("bibtex", method)
        batch = cfg.data.batch_size
        data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch).prefetch(2)
        model = experiment.build_method(cfg, spec, steps_per_epoch=100)
        model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up: tracing
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=FLAGS.train_steps, epochs=1, verbose=0)
        seconds = time.perf_counter() - start
        ms_per_step = 1000 * seconds / FLAGS.train_steps
        # The Bibtex schedule of tasks/bibtex.json: 4636 training rows (4880 less 5% validation),
        # then 4880 for the final epochs; validation passes are not counted.
        steps = (cfg.epochs * math.ceil(4636 / batch)
                 + cfg.final_epochs_on_all_training_data * math.ceil(4880 / batch))
        row = {"method": method, "batch_size": batch, "train_steps": FLAGS.train_steps,
               "ms_per_step": ms_per_step,
               "examples_per_s": FLAGS.train_steps * batch / seconds,
               "train_refine_steps": cfg.train_refine.steps if method != "feedforward" else 0,
               "schedule_steps": steps,
               "projected_train_seconds": steps * ms_per_step / 1000}
        training.append(row)
        print(row, flush=True)

    record = {
        "benchmark": "refinement and train-step throughput on Bibtex shapes",
        "refinement": refinement,
        "train_step": training,
        "reference": "published DVN code: ~11 ms per Bibtex test example (20 steps, one example per session call) on this 2-core machine",
        "command": results.command_line(sys.argv),
        "git_rev": results.git_revision(),
        "machine": results.machine(),
    }
    results.write_json(FLAGS.output, record)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
