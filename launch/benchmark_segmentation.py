"""Test-time refinement throughput on 32x32 masks with 36 crops; writes results/benchmark-<task>.json.

    python launch/benchmark_segmentation.py --task=horses --output=results/benchmark-horses.json

For each method that refines (LDRSP: G(x) refined on the patch discriminator, crops averaged;
DVN: from zeros, joint inference over the whole mask), the task file's test-time settings
(tasks/<task>.json: steps, eta, 24x24 crops on a 6x6 grid = 36 crops per 32x32 image) and
untrained networks of the task's shapes (speed does not depend on the weights), times
`model.infer` on a batch of 32x32 images run as (a) one `tf.function` (the refinement is
one `tf.while_loop`), (b) the same with XLA, (c) eagerly, one Python iteration per step.
Timings are the median of repeated runs after a warm-up (tracing, XLA compilation); each
variant's largest difference from (a) and its agreement on binarized labels are recorded.
"""

from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("task", "horses", "Segmentation task file (tasks/<task>.json).")
flags.DEFINE_string("output", None, "Where to write the JSON (default: results/benchmark-<task>.json).")
flags.DEFINE_list("methods", ["ldrsp", "dvn"], "Methods to time.")
flags.DEFINE_list("batch_sizes", ["1", "25", "100"], "Images per call (100 = the horse test set).")
flags.DEFINE_integer("repeats", 3, "Timed repetitions (median reported).")
flags.DEFINE_bool("eager", True, "Also time the eager per-step loop (slow).")


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf

    from tfsp import config as config_lib
    from tfsp.benchmarking import median_seconds
    from tfsp import crops, experiment, results
    from tfsp.spec import binary_segmentation_spec, multiclass_segmentation_spec

    keras.utils.set_random_seed(0)
    rows = []
    for method in FLAGS.methods:
        cfg = config_lib.resolve(FLAGS.task, method)
        data = cfg.data
        channels = 3 if FLAGS.task == "lfw" else 1
        if channels == 1:
            spec = binary_segmentation_spec(FLAGS.task, data.image_size, data.crop_size, data.crop_grid)
        else:
            spec = multiclass_segmentation_spec(FLAGS.task, data.image_size, channels, data.crop_size,
                                                data.crop_grid)
        model = experiment.build_method(cfg, spec, steps_per_epoch=1)
        n_crops = len(crops.crop_offsets(data.image_size, data.crop_size, data.crop_grid))

        def infer_y(x):
            return model.infer(x)["y"]

        compiled = tf.function(infer_y, reduce_retracing=True)
        compiled_xla = tf.function(infer_y, jit_compile=True, reduce_retracing=True)
        for batch in [int(b) for b in FLAGS.batch_sizes]:
            x = tf.random.stateless_uniform((batch, data.image_size, data.image_size, 3), (0, batch))
            reference = compiled(x).numpy()
            variants = [("compiled", compiled), ("compiled_xla", compiled_xla)]
            if FLAGS.eager:
                variants.append(("eager_loop", infer_y))
            row = {"method": method, "crop_mode": cfg.crop_mode, "images": batch,
                   "crops_per_image": n_crops, "crop_size": data.crop_size,
                   "image_size": data.image_size, "steps": cfg.test_refine.steps,
                   "step_size": cfg.test_refine.step_size, "normalize": cfg.test_refine.normalize}
            for name, fn in variants:
                # Same routine, different kernels: float rounding differs, and normalized steps
                # on an untrained D amplify it, so the agreement is reported, not asserted.
                y = fn(x).numpy()
                row[f"{name}_max_abs_difference"] = float(np.max(np.abs(y - reference)))
                row[f"{name}_label_agreement"] = float(np.mean((y > 0.5) == (reference > 0.5)))
                seconds = median_seconds(lambda: fn(x).numpy(), FLAGS.repeats)
                row[f"{name}_ms_per_image"] = 1000 * seconds / batch
                row[f"{name}_images_per_s"] = batch / seconds
            if FLAGS.eager:
                row["compiled_speedup_over_eager"] = row["eager_loop_ms_per_image"] / row["compiled_ms_per_image"]
                row["xla_speedup_over_eager"] = row["eager_loop_ms_per_image"] / row["compiled_xla_ms_per_image"]
            rows.append(row)
            print(row, flush=True)

    record = {
        "benchmark": f"test-time refinement of 32x32 masks with crops ({FLAGS.task})",
        "refinement": rows,
        "command": results.command_line(sys.argv),
        "git_rev": results.git_revision(),
        "machine": results.machine(),
    }
    output = FLAGS.output or f"results/benchmark-{FLAGS.task}.json"
    results.write_json(output, record)
    print(f"wrote {output}")


if __name__ == "__main__":
    app.run(main)
