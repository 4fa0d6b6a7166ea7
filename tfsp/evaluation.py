"""Evaluation of a trained method: test metrics, step curves (each metric after every refinement
step), the step count, crop mode and threshold chosen on validation, and the test record of a run."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfsp import crops, results
from tfsp.config import ConfigError, ExperimentConfig
from tfsp.datasets import TaskData
from tfsp.methods import StructuredModel
from tfsp.spec import metric_sums, metric_values


def evaluate(model: StructuredModel, dataset, verbose=0) -> Dict[str, float]:
    values = model.evaluate(dataset, verbose=verbose, return_dict=True)
    return {k: float(v) for k, v in values.items()}


def step_curve(model: StructuredModel, dataset, steps: int, verbose=0) -> Dict[str, list]:
    """Each metric after every refinement step 0..steps (binarized predictions) over `dataset`
    (with a Keras progress bar over its batches at verbose=1, one line at 2)."""
    spec = model.spec

    @tf.function(reduce_retracing=True)
    def batch_sums(x, y_true):
        trajectory = model.infer(x, return_trajectory=True)["trajectory"]  # [T+1, B, ...]
        t, b = tf.shape(trajectory)[0], tf.shape(trajectory)[1]
        flat = tf.reshape(trajectory, tf.concat([[t * b], tf.shape(trajectory)[2:]], 0))
        truth = tf.reshape(tf.repeat(y_true[tf.newaxis], t, axis=0), tf.shape(flat))
        return metric_sums(spec, flat, truth, groups=t)  # per step: [T+1] sums

    with model.test_settings(refine=dataclasses.replace(model.test_refine, steps=steps, tolerance=0.0)):
        totals = None
        batches = int(dataset.cardinality().numpy())
        progress = keras.utils.Progbar(batches if batches > 0 else None,
                                       verbose=1 if verbose == "auto" else int(verbose))
        for batch, (x, y_true) in enumerate(dataset):
            sums = {k: (n.numpy(), d.numpy()) for k, (n, d) in batch_sums(x, tf.cast(y_true, tf.float32)).items()}
            totals = sums if totals is None else {k: (totals[k][0] + n, totals[k][1] + d) for k, (n, d) in sums.items()}
            progress.update(batch + 1)
    curve = {"step": list(range(steps + 1))}
    curve.update({name: [float(v) for v in values] for name, values in metric_values(spec, totals).items()})
    return curve


def predicted_test_metrics(model: StructuredModel, data: TaskData, verbose=0) -> Dict[str, float]:
    """The test metrics `evaluate` computes and the task's own (data.test_metrics, e.g. LFW's at
    250x250), all from one prediction pass over the test split (each pass is minutes on a CPU);
    G-alone metrics prefixed inference_net_."""
    outputs = model.predict(data.test, verbose=verbose)
    labels = tf.constant(np.concatenate([y.numpy() for _, y in data.test]), tf.float32)
    metrics = {}
    for key, prefix in (("y", ""), ("y_inference_net", "inference_net_")):
        if key in outputs:
            values = metric_values(model.spec, metric_sums(model.spec, tf.constant(outputs[key]), labels))
            values = {name: float(value) for name, value in values.items()}
            values.update(data.test_metrics(outputs[key]))
            metrics.update({prefix + name: value for name, value in values.items()})
    return metrics


def metrics_from_step_curve(model: StructuredModel, curve: Dict[str, list]) -> Dict[str, float]:
    """The test metrics `evaluate` would return, read off a step curve of the model's own
    test-time refinement: the entry at the model's number of steps is the prediction (the
    curve may go further), step 0 the start (G(x) alone for methods with an inference
    network), so the curve's pass over the test set serves both."""
    metrics = {}
    for name, values in curve.items():
        if name == "step":
            continue
        metrics[name] = values[model.test_refine.steps]
        if "inference_net_" in model.prediction_kinds():
            metrics["inference_net_" + name] = values[0]
    return metrics


def test_record(config: ExperimentConfig, data: TaskData, model: StructuredModel,
                 step_curve_steps: int, git_rev: str, verbose=0,
                 command: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Test metrics (final prediction and G alone) plus everything needed to reproduce them;
    `verbose` as in Keras (progress bars at 1, one line at 2); `command`: results.portable_command's
    record of the command (default: of sys.argv)."""
    eval_started = time.time()
    check_test_selection(config, data.spec)
    selected = crop_mode_selected = None
    if config.select_crop_mode and data.spec.crop_size and model.refines:
        crop_mode_selected = select_crop_mode(model, data.validation, verbose=verbose)
    mirror_selected = None
    if config.select_mirror and model.refines:
        mirror_selected = select_mirror(model, data.validation, verbose=verbose)
    selected = threshold_selected = None
    if config.select_refine_steps and model.refines:
        selected = select_refine_steps(model, data.validation, verbose=verbose,
                                       up_to=config.select_refine_steps_up_to)
    if config.select_threshold:
        threshold_selected = select_threshold(model, data.validation, verbose=verbose)
    curve = None
    if step_curve_steps:
        curve = step_curve(model, data.test, step_curve_steps, verbose=verbose)
    if data.test_metrics is not None:
        test_metrics = predicted_test_metrics(model, data, verbose=verbose)
    elif curve is not None and step_curve_steps >= model.test_refine.steps and not model.test_refine.tolerance:
        test_metrics = metrics_from_step_curve(model, curve)  # each pass costs minutes on a CPU
    else:
        test_metrics = evaluate(model, data.test, verbose=verbose)
    logging.info("test metrics: %s", test_metrics)
    prefix = "inference_net_"
    record: Dict[str, Any] = {
        "task": config.task,
        "method": config.method,
        "metrics": {k: v for k, v in test_metrics.items() if not k.startswith(prefix)},
    }
    variant = type(model).variant(config.settings)
    if variant:
        record["variant"] = variant  # e.g. the README table keeps one row per primary loss
    if config.select_on:
        record["variant"] = (record.get("variant", "") + f" select {config.select_on}").strip()
    of_g = {k[len(prefix):]: v for k, v in test_metrics.items() if k.startswith(prefix)}
    if of_g:
        record["metrics_inference_net"] = of_g
    record.update({
        "seed": config.seed,
        "split": data.split,
        "sizes": data.sizes,
        "data": data.source,
        "config": config.to_dict(),
        "git_rev": git_rev,
        **(command or results.portable_command(sys.argv)),
        "eval_seconds": round(time.time() - eval_started, 2),
        "machine": results.machine(),
    })
    if config.compare_crop_modes and data.spec.crop_size and model.refines:
        record["metrics_by_crop_mode"] = crop_mode_metrics(model, data.test, verbose=verbose,
                                                           known={model.crop_mode: record["metrics"]})
    if curve is not None:
        record["step_curve"] = curve
    if selected is not None:
        record["refine_steps_selected"] = selected
    if crop_mode_selected is not None:
        record["crop_mode_selected"] = crop_mode_selected
    if mirror_selected is not None:
        record["mirror_selected"] = mirror_selected
    if threshold_selected is not None:
        record["threshold_selected"] = threshold_selected
    return record


THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""The prediction thresholds select_threshold compares: 0.05, 0.10, ..., 0.95."""


def select_threshold(model: StructuredModel, validation, verbose=0) -> Dict[str, Any]:
    """Sets the model's prediction threshold to the one of THRESHOLDS (the nearest 0.5 among
    ties) whose binarized prediction has the best primary metric on `validation`, all scored
    from one prediction pass; returns {"chosen", "configured", "validation": {threshold: metric}}."""
    if validation is None:
        raise ConfigError("select_threshold needs a validation split; this task's data has none")
    if model.spec.multiclass:
        raise ConfigError("select_threshold applies to outputs with independent elements; "
                          f"{model.spec.name}'s are distributions (arg-max)")
    configured = model.spec.threshold
    y = tf.constant(model.predict(validation, verbose=verbose)["y"], tf.float32)
    labels = tf.constant(np.concatenate([labels.numpy() for _, labels in validation]), tf.float32)
    metric = model.spec.primary_metric
    by_threshold = {}
    for threshold in THRESHOLDS:
        spec = dataclasses.replace(model.spec, threshold=threshold)
        by_threshold[threshold] = float(metric_values(spec, metric_sums(spec, y, labels))[metric])
    chosen = max(THRESHOLDS, key=lambda t: (by_threshold[t], -abs(t - 0.5)))
    model.set_test_settings(threshold=chosen)
    logging.info("threshold selected on validation: %.2f (%s %.2f; %.2f at %.2f)", chosen, metric,
                 by_threshold[chosen], by_threshold.get(configured, float("nan")), configured)
    return {"chosen": chosen, "configured": configured,
            "validation": {f"{t:.2f}": round(v, 4) for t, v in by_threshold.items()}}


def _choose_on_validation(model: StructuredModel, validation, options, configured, settings, name: str,
                          verbose=0):
    """Evaluates `validation` under test_settings(**settings(option)) for each option, keeps the
    option with the best primary metric (ties: the configured one) set on the model and returns
    (chosen, {option: metrics without the inference network's}); `name` in logs and errors."""
    if validation is None:
        raise ConfigError(f"select_{name} needs a validation split; this task's data has none")
    by_option = {}
    for option in options:
        with model.test_settings(**settings(option)):
            by_option[option] = {k: v for k, v in evaluate(model, validation, verbose=verbose).items()
                                 if not k.startswith("inference_net_")}
    metric = model.spec.primary_metric
    chosen = max(options, key=lambda o: (by_option[o][metric], o == configured))
    model.set_test_settings(**settings(chosen))
    logging.info("%s selected on validation: %s (%s)", name.replace("_", " "), chosen,
                 {o: round(v[metric], 2) for o, v in by_option.items()})
    return chosen, by_option


def select_crop_mode(model: StructuredModel, validation, verbose=0) -> Dict[str, Any]:
    """Sets model.crop_mode to the crop mode (average | joint) with the best primary metric on
    `validation`; returns {"chosen", "configured", "validation"}."""
    configured = model.crop_mode
    chosen, by_mode = _choose_on_validation(model, validation, crops.CROP_MODES, configured,
                                            lambda mode: {"crop_mode": mode}, "crop_mode", verbose)
    return {"chosen": chosen, "configured": configured, "validation": by_mode}


def check_test_selection(config, spec) -> None:
    """Raises ConfigError for a test-time choice the task cannot make (before any training)."""
    if config.select_mirror and not spec.crop_size:
        raise ConfigError(f"select_mirror applies to image segmentation tasks; {spec.name}'s inputs "
                          "have no left-right mirror image (set select_mirror=false)")


def select_mirror(model: StructuredModel, validation, verbose=0) -> Dict[str, Any]:
    """Sets test_refine.mirror to whichever (off | on) refines to the better primary metric on
    `validation` (ties: the configured one); returns {"chosen", "configured", "validation"}."""
    configured = model.test_refine.mirror
    chosen, by_choice = _choose_on_validation(
        model, validation, (False, True), configured,
        lambda mirror: {"refine": dataclasses.replace(model.test_refine, mirror=mirror)}, "mirror", verbose)
    return {"chosen": chosen, "configured": configured,
            "validation": {str(m).lower(): v for m, v in by_choice.items()}}


def select_refine_steps(model: StructuredModel, validation, verbose=0, up_to: int = 0) -> Dict[str, Any]:
    """Sets model.test_refine.steps to the step count (0..max(steps, up_to); the fewest among
    ties) with the best primary metric on `validation`; returns {"chosen", "configured",
    "validation_curve"}."""
    if validation is None:
        raise ConfigError("select_refine_steps needs a validation split; this task's data has none")
    configured = model.test_refine.steps
    curve = step_curve(model, validation, max(configured, up_to), verbose=verbose)
    values = curve[model.spec.primary_metric]
    chosen = int(max(range(len(values)), key=lambda k: (values[k], -k)))
    model.set_test_settings(refine=dataclasses.replace(model.test_refine, steps=chosen))
    logging.info("refinement steps selected on validation: %d of %d (%s %.2f)", chosen, configured,
                 model.spec.primary_metric, values[chosen])
    return {"chosen": chosen, "configured": configured, "validation_curve": curve}


def crop_mode_metrics(model: StructuredModel, dataset, verbose=0,
                      known: Optional[Dict[str, Dict[str, float]]] = None) -> Dict[str, Dict[str, float]]:
    """Test metrics of refinement with each crop mode (crops refined alone and averaged, or
    the whole mask refined jointly), whichever the model was trained with; modes in `known`
    (e.g. the model's own, just evaluated) are not evaluated again."""
    by_mode = {mode: {k: v for k, v in metrics.items() if k in model.eval_trackers}  # not the task's own
               for mode, metrics in (known or {}).items()}
    for mode in [m for m in crops.CROP_MODES if m not in by_mode]:
        with model.test_settings(crop_mode=mode):
            by_mode[mode] = {k: v for k, v in evaluate(model, dataset, verbose=verbose).items()
                             if not k.startswith("inference_net_")}
    return by_mode


def periodic_validation_data(config: ExperimentConfig, data: TaskData):
    """The validation pipeline fit scores every `validation_every` epochs: the whole validation
    split, or its first `validation_images` examples (a fixed subset, cached)."""
    if data.validation is None or not config.validation_images:
        return data.validation
    batch = config.data.eval_batch_size
    return data.validation.unbatch().take(config.validation_images).batch(batch).cache()
