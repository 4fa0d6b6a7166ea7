"""init_checkpoint: a run starts from another run's networks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsp import config as config_lib
from tfsp import experiment, networks
from tfsp.config import ConfigError


def test_ldrsp_starts_its_inference_net_from_a_feedforward_run(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    data = {"data": {"arff": str(arff), "xml": str(xml)}, "epochs": 1}
    feedforward = config_lib.resolve("mlc", "feedforward", data)
    experiment.run(feedforward, str(tmp_path / "ff"), None, verbose=0)
    _, trained = experiment.restore(feedforward, str(tmp_path / "ff"))

    ldrsp = config_lib.resolve("mlc", "ldrsp", {**data, "inference_net": feedforward.to_dict()["inference_net"],
                                                "init_checkpoint": str(tmp_path / "ff"),
                                                "init_networks": ["inference_net"]})
    _, model = experiment._setup(ldrsp)
    untouched = [w.copy() for w in model.value_net.get_weights()]
    assert experiment.initialize_from(model, ldrsp.init_checkpoint, ldrsp.init_networks) == ["inference_net"]
    for mine, theirs in zip(model.inference_net.get_weights(), trained.inference_net.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    for mine, before in zip(model.value_net.get_weights(), untouched, strict=True):
        np.testing.assert_array_equal(mine, before)

    # What the feed-forward run lacks, a network this method lacks, a path that holds nothing.
    with pytest.raises(ConfigError, match="no value_net"):
        experiment.initialize_from(model, str(tmp_path / "ff"), ["value_net"])
    with pytest.raises(ConfigError, match="no network.*cost_augmented_net.*its networks"):
        experiment.initialize_from(model, str(tmp_path / "ff"), ["cost_augmented_net"])
    with pytest.raises(ConfigError, match="not a model dir"):
        experiment.initialize_from(model, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="needs init_checkpoint"):
        config_lib.validate(config_lib.resolve("mlc", "ldrsp", {**data, "init_networks": ["value_net"]}))

    # Through run(): a fresh run starts there, and its record says from where.
    record = experiment.run(ldrsp, str(tmp_path / "ldrsp"), None, verbose=0)
    assert record["config"]["init_checkpoint"] == str(tmp_path / "ff")


def test_a_network_of_another_shape_is_refused(tiny_mulan, tmp_path):
    arff, xml = tiny_mulan
    data = {"data": {"arff": str(arff), "xml": str(xml)}, "epochs": 1}
    feedforward = config_lib.resolve("mlc", "feedforward", {**data, "inference_net": {"hidden": [7]}})
    experiment.run(feedforward, str(tmp_path / "ff"), None, verbose=0)
    ldrsp = config_lib.resolve("mlc", "ldrsp", {**data, "inference_net": {"hidden": [9]}})
    _, model = experiment._setup(ldrsp)
    with pytest.raises(ConfigError, match=r"has no inference_net of this shape.*\(9,"):
        experiment.initialize_from(model, str(tmp_path / "ff"), ["inference_net"])


@pytest.mark.parametrize("make", [
    lambda: networks.MultiLabelEnergy(5, hidden=(7, 6)),
    lambda: networks.MultiLabelMLP(5, hidden=(7, 6), dropout=0.5),
    lambda: networks.FCN(3, filters=(4, 6, 6)),
    lambda: networks.ConvValueNet(filters=(4, 6, 6), dense=(8, 5)),
    lambda: networks.PatchDiscriminator(filters=(4, 6, 6))], ids=["energy", "mlp", "fcn", "conv_value", "patch"])
def test_a_network_checkpoint_holds_every_weight(make, tmp_path):
    """A network's own tf.train.Checkpoint, with no optimizer referring to its variables, holds
    all of them, also those of the layers it keeps in lists (what an averaged value network,
    trained by no optimizer, relies on)."""
    def built():
        net = make()
        if isinstance(net, networks.ValueNetwork):
            shape = (2, 5) if isinstance(net, networks.MultiLabelEnergy) else (2, 8, 8, 3)
            y_shape = (2, 5) if isinstance(net, networks.MultiLabelEnergy) else (2, 8, 8, 1)
            net((tf.zeros(shape), tf.zeros(y_shape)))
        else:
            net(tf.zeros((2, 5)) if isinstance(net, networks.MultiLabelMLP) else tf.zeros((2, 8, 8, 3)))
        return net

    keras.utils.set_random_seed(1)
    saved = built()
    path = tf.train.Checkpoint(net=saved).write(str(tmp_path / "net"))
    keras.utils.set_random_seed(2)
    loaded = built()
    tf.train.Checkpoint(net=loaded).read(path).assert_consumed()
    assert len(loaded.weights) == len(saved.weights) > 2
    for mine, theirs in zip(loaded.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
