"""The quick check before a long run: the value network alone, trained for a few minutes on
fixed tuples made from y*, must rank a validation example's own y* above wrong outputs and
order the test-time refinement's iterates as the oracle does.

`python -m tfsp.launch --task=horses --method=dvn --mode=check [--set check_updates=600]`
writes <results_dir>/<name>-check.json. It separates optimisation problems (D cannot learn
to rank even on fixed tuples: learning rate, architecture) from sampling dynamics (D ranks
fixed tuples but the method's own tuples mislead it).
"""

from __future__ import annotations

import time
from typing import Any, Dict

import numpy as np
import tensorflow as tf

from tfsp.config import ConfigError, ExperimentConfig
from tfsp.methods.base import StructuredModel
from tfsp.methods.replicas import per_example_mean
from tfsp.probe import centre_crop, reference_outputs

WRONG_KINDS = ("other_example_ground_truth", "shifted_ground_truth", "zeros", "ones", "noise", "blurred_noise")
"""Outputs that must rank below y*, each also a training tuple kind (with its oracle target)."""


def fixed_tuples(spec, y_true, rng: tf.random.Generator) -> Dict[str, tf.Tensor]:
    """{kind: y} made from y* alone: the probe's reference outputs without a prediction, plus
    noise interpolated halfway to y*."""
    return reference_outputs(spec, y_true, rng, blurred_noise=True)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = lambda v: np.argsort(np.argsort(v)).astype(np.float64)  # noqa: E731
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def check_value_network(model: StructuredModel, train, validation, updates: int, seed: int = 0,
                        ) -> Dict[str, Any]:
    """Trains model.value_net alone (its compiled optimizer: `optimizer` or `d_optimizer`) for
    `updates` steps of sigmoid cross-entropy to the oracle on fixed_tuples of each training batch,
    then scores it on `validation` (centre crops for segmentation)."""
    if not model.refines:
        raise ConfigError(f"method {model.name!r} has no value network to check")
    spec, net = model.spec, model.value_net
    optimizer = getattr(model, "d_optimizer", None) or model.optimizer
    rng = tf.random.Generator.from_seed(seed)

    @tf.function
    def step(x, y_true):
        x = model.prepare_inputs(x)
        tuples = fixed_tuples(spec, y_true, rng)
        with tf.GradientTape() as tape:
            context = net.precompute(x, training=True)
            loss = tf.add_n([tf.reduce_mean(per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=spec.oracle_fn(y, y_true), logits=net.score(context, y, training=True))))
                for y in tuples.values()]) / len(tuples)
        variables = net.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    started = time.time()
    losses, done = [], 0
    while done < updates:
        for x, y_true in train:
            losses.append(float(step(x, tf.cast(y_true, tf.float32))))
            done += 1
            if done >= updates:
                break
    train_seconds = time.time() - started

    values: Dict[str, list] = {}
    oracles: Dict[str, list] = {}
    trajectory_values, trajectory_oracles, per_example_order = [], [], []
    for x, y_true in validation:
        x, y_true = centre_crop(spec, x, tf.cast(y_true, tf.float32))
        value_fn = model.value_of(model.prepare_inputs(x))
        for kind, y in fixed_tuples(spec, y_true, rng).items():
            values.setdefault(kind, []).append(value_fn(y).numpy())
            oracles.setdefault(kind, []).append(per_example_mean(spec.oracle_fn(y, y_true)).numpy())
        trajectory = model.infer(x, return_trajectory=True)["trajectory"]  # [T+1, B, ...]
        v = np.stack([value_fn(y).numpy() for y in trajectory])
        o = np.stack([per_example_mean(spec.oracle_fn(y, y_true)).numpy() for y in trajectory])
        trajectory_values.append(v.ravel())
        trajectory_oracles.append(o.ravel())
        per_example_order += [_spearman(v[:, b], o[:, b]) for b in range(v.shape[1])]
    values = {k: np.concatenate(v) for k, v in values.items()}
    oracles = {k: np.concatenate(v) for k, v in oracles.items()}
    truth = values["ground_truth"]
    return {
        "updates": updates, "train_seconds": round(train_seconds, 2),
        "loss_first_last": [losses[0], float(np.mean(losses[-20:]))],
        "ground_truth_ranked_above": {kind: float(np.mean(truth > values[kind]))
                                      for kind in WRONG_KINDS if kind in values},
        "mean_value": {k: float(v.mean()) for k, v in values.items()},
        "mean_oracle": {k: float(v.mean()) for k, v in oracles.items()},
        "refinement": {
            "steps": model.test_refine.steps,
            "spearman_value_vs_oracle_all_iterates": _spearman(np.concatenate(trajectory_values),
                                                               np.concatenate(trajectory_oracles)),
            "spearman_along_trajectory_mean": float(np.mean(per_example_order)),
            "final_value": float(np.mean([v.reshape(-1)[-1] for v in trajectory_values])),
            "final_oracle_mean": float(np.mean(np.concatenate(
                [o.reshape(model.test_refine.steps + 1, -1)[-1] for o in trajectory_oracles]))),
        },
    }


def check_saved(config: ExperimentConfig, results_path=None, updates: int = 600,
                overwrite_results: bool = False, command=None) -> Dict[str, Any]:
    """--mode=check: a fresh model of `config`, its value network checked as above on the
    validation split (the test split if there is none); overwrite_results and command as in
    tfsp.experiment.run."""
    import sys

    from tfsp import config as config_lib
    from tfsp import experiment, results

    if updates < 1:
        raise ConfigError(f"--check_updates must be >= 1, got {updates}")
    config_lib.validate(config)
    results.check_replaceable(results_path, config, overwrite=overwrite_results)
    git_rev = results.git_revision()
    data, model = experiment._setup(config)
    split = "validation" if data.validation is not None else "test"
    train = data.train
    if experiment.training_folds(config):  # the check's value net trains on y* alone
        train = train.map(lambda x, y: (x, y[..., :-1]))
    record = {"task": config.task, "method": config.method, "split": split, "seed": config.seed,
              "check": check_value_network(model, train, getattr(data, split), updates, config.seed),
              "config": config.to_dict(), "git_rev": git_rev,
              **(command or results.portable_command(sys.argv)), "machine": results.machine()}
    if results_path:
        results.write_json(results_path, record)
    return record
