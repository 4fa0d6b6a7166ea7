"""Run by tests/test_distribute.py in a fresh process: two logical CPU devices must be
configured before TensorFlow initializes its devices, which pytest's process has done.

Trains each method on the same global batches once on one device (default strategy)
and once under MirroredStrategy over the two devices, from the same initial weights,
and prints one JSON object: per method, both per-batch loss trajectories, both test
evaluations and the final weights' difference relative to their norm,
||w_replicated - w_single|| / ||w_single|| over all weights together; plus whether the replicas
drew distinct random numbers and dropout masks.
"""

import json
import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(__file__))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from conftest import correlated_multilabel  # noqa: E402
from test_methods import method_config  # noqa: E402
from tfsp import experiment  # noqa: E402
from tfsp.networks import ReplicaDropout  # noqa: E402
from tfsp.spec import multilabel_spec  # noqa: E402

# Sampling made deterministic, so both runs see the same tuples: adversarial ascent always
# starts from the method's default start (from_ground_truth 0), no stratified noise.
CONFIGS = {
    "feedforward": {"inference_net": {"weight_decay": 1e-3}},
    "dvn": {"sample_weights": {"inference": 1.0, "adversarial": 1.0, "ground_truth": 1.0},
            "adversarial": {"from_ground_truth": 0.0}, "value_net": {"weight_decay": 1e-3}},
    # With D's moving average (updated in cross-replica context) among the weights compared.
    "ldrsp": {"adversarial": {"from_ground_truth": 0.0, "normalize": True, "step_size": 0.2},
              "train_refine": {"normalize": True, "step_size": 0.2}, "value_average": 0.9},
    # The SSVM primary loss draws no random numbers (CD's Bernoulli samples would differ per
    # replica by design). Two inner steps and two series terms exercise the optimizer inside
    # the inner loop and the all-reduced Hessian-vector products; λ = 0 for the first step.
    "implicit": {"primary_loss": "ssvm", "pretrain_epochs": 0.25, "value_net": {"weight_decay": 1e-3},
                 "inference_net": {"weight_decay": 1e-3},
                 "inner_steps": 2, "neumann_terms": 2, "neumann_step": 0.05},
    # Two pre-training (logistic) steps, then the SSVM with cost-augmented refinement.
    "spen": {"pretrain_epochs": 0.5, "value_net": {"weight_decay": 1e-3}},
    "infnet": {"inference_net": {"weight_decay": 1e-3}, "value_net": {"weight_decay": 1e-3}},
}


class BatchLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append({k: float(v) for k, v in logs.items()})


def train(method, strategy, initial_weights=None):
    # 61 examples in batches of 20: the last global batch (1 example) leaves one replica empty.
    x, y = correlated_multilabel(n=61, num_features=8, num_labels=6, seed=1)
    spec = multilabel_spec("synthetic", 8, 6, feature_mean=x.mean(0), feature_std=x.std(0) + 1e-6)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(20)
    # 13 test examples in batches of 4: uneven splits and an empty replica in evaluation too.
    test = tf.data.Dataset.from_tensor_slices((x[:13], y[:13])).batch(4)
    config = method_config(method, **CONFIGS[method])
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = experiment.build_method(config, spec, steps_per_epoch=4)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    weights = [np.array(w) for w in model.get_weights()]
    recorder = BatchLosses()
    history = model.fit(data, epochs=2, verbose=0, callbacks=[recorder])
    evaluation = model.evaluate(test, verbose=0, return_dict=True)
    return (model, weights, recorder.losses, {k: [float(v) for v in vs] for k, vs in history.history.items()},
            {k: float(v) for k, v in evaluation.items()})


def main():
    out = {}
    # One MirroredStrategy per process: a second one would reuse collective keys.
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for method in sys.argv[1:]:
        single, weights, single_losses, single_epochs, single_eval = train(method, tf.distribute.get_strategy())
        replicated, _, replicated_losses, replicated_epochs, replicated_eval = train(method, mirrored, weights)
        pairs = list(zip(single.get_weights(), replicated.get_weights()))
        difference = (np.sqrt(sum(np.sum((np.float64(a) - b) ** 2) for a, b in pairs))
                      / np.sqrt(sum(np.sum(np.float64(a) ** 2) for a, _ in pairs)))
        out[method] = {"single": single_losses, "replicated": replicated_losses,
                       "single_epochs": single_epochs, "replicated_epochs": replicated_epochs,
                       "single_eval": single_eval, "replicated_eval": replicated_eval,
                       "weight_relative_difference": float(difference)}
        if method == "dvn":
            draws = mirrored.run(lambda: replicated.uniform([4]))
            first, second = (d.numpy().tolist() for d in mirrored.experimental_local_results(draws))
            out["replica_draws"] = [first, second]
    with mirrored.scope():
        dropout = ReplicaDropout(0.5, seed=1)
    masks = mirrored.run(tf.function(lambda: dropout(tf.ones([16]), training=True)))
    out["dropout_masks"] = [m.numpy().tolist() for m in mirrored.experimental_local_results(masks)]
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
