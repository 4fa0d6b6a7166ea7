"""A method is one module plus its section in a task file: this file registers one (label-smoothed
cross-entropy) and runs it through the launcher, in-process, on a task file of its own."""

import dataclasses
import json
import sys
from typing import ClassVar

import pytest
import tensorflow as tf

from conftest import launch_in_process
from tfsp import config as config_lib
from tfsp.methods import StructuredModel, registry


@dataclasses.dataclass
class SmoothedSettings:
    optimizer: config_lib.OptimizerConfig = dataclasses.field(
        default_factory=lambda: config_lib.OptimizerConfig(learning_rate=0.01))
    smoothing: float = 0.1
    """Targets (1 − s)·y* + s/2."""

    RANGES: ClassVar = {"smoothing": config_lib.FRACTION}


@registry.register("smoothed", settings=SmoothedSettings)
class Smoothed(StructuredModel):
    """G(x) trained on label-smoothed cross-entropy; prediction is G(x)."""

    def __init__(self, spec, inference_net, smoothing: float, **kwargs):
        super().__init__(spec, **kwargs)
        self.inference_net, self.smoothing = inference_net, smoothing

    @classmethod
    def from_settings(cls, settings: SmoothedSettings, parts, **common):
        return cls(inference_net=parts.inference_net(), smoothing=settings.smoothing, **common)

    def initial_output(self, x, training=False):
        return self.spec.output_probabilities(self.inference_net(x, training=training)), {}

    def train_step(self, data):
        x, y_true = self.prepare_inputs(data[0]), tf.cast(data[1], tf.float32)
        batch = self.global_batch(x)
        target = (1.0 - self.smoothing) * y_true + self.smoothing / 2
        with tf.GradientTape() as tape:
            loss = batch.mean(self.spec.cross_entropy(target, self.inference_net(x, training=True)))
        variables = self.inference_net.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.track(loss=loss)
        return self.train_results()


@pytest.fixture
def task_file(tmp_path, tiny_mulan):
    arff, xml = tiny_mulan
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({
        "task": "tiny", "default_method": "smoothed",
        "experiment": {"data": {"loader": "mulan", "arff": str(arff), "xml": str(xml), "batch_size": 20},
                       "inference_net": {"hidden": [16]}, "epochs": 2},
        "methods": {"smoothed": {"smoothing": 0.2}, "dvn": {"test_refine": {"steps": 3}}}}))
    return path


def launched(*args):
    """The launcher's status; what it printed passed on (to capsys)."""
    proc = launch_in_process(*args)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


def test_a_method_registered_by_a_test_file_runs_through_the_launcher(task_file, tmp_path):
    config = config_lib.resolve(str(task_file), None)
    assert isinstance(config.settings, SmoothedSettings) and config.settings.smoothing == 0.2
    assert launched(f"--task={task_file}", f"--model_dir={tmp_path / 'run'}",
                    f"--results_dir={tmp_path / 'results'}", "--learning_rate=0.02", "--verbose=0") == 0
    record = json.loads((tmp_path / "results" / "tiny-smoothed.json").read_text())
    assert record["method"] == "smoothed" and set(record["metrics"]) == {"example_f1"}
    assert record["config"]["settings"] == {"optimizer": {**dataclasses.asdict(config_lib.OptimizerConfig()),
                                                          "learning_rate": 0.02}, "smoothing": 0.2}
    assert len(record["history"]["loss"]) == 2


def test_the_method_section_is_validated_naming_file_and_key(task_file, tmp_path, capsys):
    # Out of range: refused by the launcher before anything is written.
    assert launched(f"--task={task_file}", "--set=smoothing=1.5", f"--model_dir={tmp_path / 'run'}",
                    f"--results_dir={tmp_path / 'results'}") == 2
    assert "invalid configuration: smoothing=1.5 (must be in [0, 1))" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    # A setting of another method is not this one's.
    with pytest.raises(config_lib.ConfigError, match="command line: unknown key 'test_refine'"):
        config_lib.resolve(str(task_file), "smoothed", {"test_refine": {"steps": 2}})
    content = json.loads(task_file.read_text())
    content["methods"]["smoothed"]["smothing"] = 0.3
    task_file.write_text(json.dumps(content))
    with pytest.raises(config_lib.ConfigError, match=r"tiny\.json: methods\.smoothed: unknown key 'smothing' "
                                                     r"in ExperimentConfig or SmoothedSettings"):
        config_lib.resolve(str(task_file), None)
