"""--verbose as a Keras user expects: nothing at 0, progress bars at 1, one line at 2, for long
evaluations (evaluate, the step curve) and for the preparation of image datasets."""

import numpy as np
import pytest
import tensorflow as tf

from tfsp import config as config_lib
from tfsp import evaluation, experiment
from tfsp.data import images as images_lib
from tfsp.data.horses import load_horses
from tfsp.spec import multilabel_spec


@pytest.fixture
def tiny_model_and_data():
    spec = multilabel_spec("toy", 6, 4)
    config = config_lib.resolve("mlc", "dvn", {"test_refine": {"steps": 2}, "value_net": {"hidden": [8]}})
    model = experiment.build_method(config, spec, steps_per_epoch=1)
    rng = np.random.RandomState(0)
    data = tf.data.Dataset.from_tensor_slices((rng.rand(12, 6).astype(np.float32),
                                               (rng.rand(12, 4) > 0.5).astype(np.float32))).batch(4)
    return model, data


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_evaluation_progress_follows_verbose(tiny_model_and_data, capsys, verbose):
    model, data = tiny_model_and_data
    evaluation.evaluate(model, data, verbose=verbose)
    curve = evaluation.step_curve(model, data, 2, verbose=verbose)
    assert len(curve["example_f1"]) == 3
    out = capsys.readouterr().out
    if verbose == 0:
        assert out == ""
    elif verbose == 1:
        assert "3/3" in out and ("\r" in out or "\b" in out), out  # an updating bar
    else:
        # One line per evaluation (Keras prints it at the end, without a bar).
        assert len([line for line in out.splitlines() if line.strip()]) == 2, out


def test_image_dataset_preparation_shows_progress(tmp_path, capsys):
    from test_images_data import _horse_tree

    db = _horse_tree(tmp_path)
    try:
        images_lib.set_progress_verbosity(0)
        load_horses(db, size=8)
        assert capsys.readouterr().out == ""
        images_lib.set_progress_verbosity(1)
        load_horses(db, size=8)
        out = capsys.readouterr().out
        assert "Weizmann horses: decoding and resizing 3 images" in out and "3/3" in out
    finally:
        images_lib.set_progress_verbosity(0)
