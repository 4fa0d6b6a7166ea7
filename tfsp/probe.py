"""--mode=probe: how a trained value network ranks reference outputs beside the task oracle."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Dict, Optional

import tensorflow as tf

from tfsp import results
from tfsp.config import ConfigError, ExperimentConfig
from tfsp.experiment import restore
from tfsp.methods import StructuredModel
from tfsp.methods.replicas import per_example_mean
from tfsp.refine import project, refine, value_and_gradient
from tfsp.spec import TaskSpec


def reference_outputs(spec: TaskSpec, y_true, rng: tf.random.Generator, prediction=None,
                      blurred_noise: bool = False) -> Dict[str, tf.Tensor]:
    """Outputs whose oracle value is known to differ a lot, each projected onto the feasible set
    ("zeros" is the uniform distribution and "ones" is left out on the simplex): y*, the model's
    `prediction` if given, zeros, ones, uniform noise, another example's y*, y* shifted by a
    sixth of the width (segmentation) and, with `blurred_noise`, the noise halfway to y*."""
    noise = rng.uniform(tf.shape(y_true))
    outputs = {"ground_truth": y_true}
    if prediction is not None:
        outputs["prediction"] = prediction
    outputs.update({"zeros": tf.zeros_like(y_true), "ones": tf.ones_like(y_true), "noise": noise,
                    "other_example_ground_truth": tf.roll(y_true, 1, axis=0)})
    if blurred_noise:
        outputs["blurred_noise"] = 0.5 * (y_true + noise)
    if spec.spatial:  # a segmentation mask moved by a sixth of its width
        outputs["shifted_ground_truth"] = tf.roll(y_true, max(1, y_true.shape[2] // 6), axis=2)
    if spec.multiclass:
        del outputs["ones"]
    return {kind: project(tf.cast(y, tf.float32), spec.projection) for kind, y in outputs.items()}


def centre_crop(spec: TaskSpec, x, y):
    """Segmentation images larger than the training crops, cut to their centre crop: the input
    size the value net was trained on."""
    if spec.crop_size and x.shape[1] != spec.crop_size:
        start = (x.shape[1] - spec.crop_size) // 2
        window = slice(start, start + spec.crop_size)
        return x[:, window, window], y[:, window, window]
    return x, y


def tangent(gradient, spec: TaskSpec):
    """The part of a gradient in y that moves y within its feasible set's affine hull: on the
    per-pixel simplex (multiclass), minus its mean over classes; otherwise itself."""
    if spec.multiclass:
        return gradient - tf.reduce_mean(gradient, axis=-1, keepdims=True)
    return gradient


def cosine(a, b):
    """Per-example cosine between a and b (flattened)."""
    a, b = (tf.reshape(t, [tf.shape(t)[0], -1]) for t in (a, b))
    return tf.reduce_sum(a * b, axis=1) / tf.maximum(tf.norm(a, axis=1) * tf.norm(b, axis=1), 1e-12)


def probe_value_network(model: StructuredModel, dataset, seed: int = 0) -> Dict[str, Dict[str, float]]:
    """{kind: {"value", "oracle", "below_ground_truth"}}: the value network's mean value, the task
    oracle's mean and the fraction of examples valued below their own ground truth, over
    `dataset`, for reference outputs (ground truth, the model's prediction, zeros, ones, noise,
    the ground truth shifted or of another example) and for "start", where test-time refinement
    starts (G(x), or zeros), with also "gradient_cosine": the mean over examples of the cosine
    between D's gradient there (its tangent to the feasible set) and y* − start, and for the
    first step of the test-time refinement (projection included) "first_step_cosine", the
    cosine of its displacement with y* − start, and "first_step_oracle". A value network that
    has learned its oracle ranks them as the oracle does and moves the start towards y*; one
    that gives them all about the same value has not (what DVN's value net on horses does),
    and one that ranks well but whose steps are orthogonal to y* − start cannot be climbed.
    Segmentation images larger than the training crops are probed on their centre crop, the
    input size the value net was trained on."""
    if not model.refines:
        raise ConfigError(f"method {model.name!r} has no value network to probe")
    spec = model.spec
    rng = tf.random.Generator.from_seed(seed)
    sums: Dict[str, Dict[str, float]] = {}
    count = 0
    for x, y_true in dataset:
        x, y_true = centre_crop(spec, x, tf.cast(y_true, tf.float32))
        prepared = model.prepare_inputs(x)
        value_fn = model.value_of(prepared)
        outputs = reference_outputs(spec, y_true, rng, prediction=model.infer(x)["y"])
        start, _ = model.initial_output(prepared)
        outputs["start"] = start = project(tf.cast(start, tf.float32), spec.projection)
        values = {kind: value_fn(y) for kind, y in outputs.items() if kind != "start"}
        values["start"], gradient = value_and_gradient(value_fn, start)
        gradient = tangent(gradient, spec)
        for kind, y in outputs.items():
            entry = sums.setdefault(kind, {"value": 0.0, "oracle": 0.0, "below_ground_truth": 0.0})
            entry["value"] += float(tf.reduce_sum(values[kind]))
            entry["oracle"] += float(tf.reduce_sum(per_example_mean(spec.oracle_fn(y, y_true))))
            entry["below_ground_truth"] += float(tf.reduce_sum(
                tf.cast(values[kind] < values["ground_truth"], tf.float32)))
        first_step = refine(value_fn, start, dataclasses.replace(model.test_refine, steps=1)).y
        toward_truth = y_true - start
        for name, total in {
                "gradient_cosine": tf.reduce_sum(cosine(gradient, toward_truth)),
                "first_step_cosine": tf.reduce_sum(cosine(first_step - start, toward_truth)),
                "first_step_oracle": tf.reduce_sum(per_example_mean(spec.oracle_fn(first_step, y_true)))}.items():
            sums["start"][name] = sums["start"].get(name, 0.0) + float(total)
        count += int(tf.shape(y_true)[0])
    probed = {kind: {name: total / count for name, total in entry.items()} for kind, entry in sums.items()}
    del probed["ground_truth"]["below_ground_truth"]
    return probed


def probe_saved(config: ExperimentConfig, model_dir: str, results_path: Optional[str] = None,
                overwrite_results: bool = False, command: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """--mode=probe: probe_value_network on the validation split (the test split if there is
    none) with the weights a run left in model_dir; written to results_path if given
    (overwrite_results and command as in `run`)."""
    results.check_replaceable(results_path, config, overwrite=overwrite_results)
    git_rev = results.git_revision()
    data, model = restore(config, model_dir)
    split = "validation" if data.validation is not None else "test"
    record = {"task": config.task, "method": config.method,
              "probe": probe_value_network(model, getattr(data, split), seed=config.seed),
              "split": split, "probed_from": str(model_dir), "seed": config.seed, "config": config.to_dict(),
              "git_rev": git_rev, **(command or results.portable_command(sys.argv)), "machine": results.machine()}
    if results_path:
        results.write_json(results_path, record)
    return record
