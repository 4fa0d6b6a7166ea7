"""Experiment configuration: typed dataclasses filled from a task file plus overrides.

A task file (`tasks/<task>.json`) holds the papers' hyper-parameters:

    {"task": "bibtex", "description": ..., "references": [...],
     "experiment": {... fields of ExperimentConfig shared by all methods ...},
     "methods": {"dvn": {... overrides for DVN ...}, "ldrsp": {...}, ...}}

The launcher resolves `ExperimentConfig` = defaults <- "experiment" <- "methods"[method]
<- command-line flags (`--set data.batch_size=64` and the named flags). Unknown keys
are errors that name the key and the file, so a typo never silently does nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, Dict, List, Optional

TASKS_DIR_ENV = "TFSP_TASKS_DIR"
DATA_DIR_ENV = "TFSP_DATA_DIR"


@dataclasses.dataclass
class DataConfig:
    loader: str = "mulan"
    """Which loader reads the data: mulan | horses | lfw."""
    name: str = ""
    """Dataset name; MULAN files are <name>.arff and <name>.xml."""
    data_dir: str = ""
    """Folder holding the files (also the TFSP_DATA_DIR environment variable)."""
    arff: str = ""
    xml: str = ""
    split: str = "seeded"
    """seeded: train = perm[:n_train], test = perm[n_train:] with perm = RandomState(split_seed).permutation(N)."""
    n_train: int = 0
    """Rows in the train part; 0: round(train_fraction * N)."""
    train_fraction: float = 0.66
    split_seed: int = 0
    validation_fraction: float = 0.05
    """Fraction of the training part held out for validation (model selection, TensorBoard)."""
    batch_size: int = 32
    eval_batch_size: int = 512
    standardize: bool = True
    """Standardize features with the training mean and std (as the DVN code does)."""
    image_size: int = 32
    crop_size: int = 24
    """Segmentation: training crops and test-time crop size (0: whole images)."""
    crop_grid: int = 6
    """Segmentation: test images are covered by crop_grid × crop_grid crops."""
    flip: bool = True
    split_sizes: List[int] = dataclasses.field(default_factory=list)
    """Segmentation without official lists: train / validation / test sizes of a seeded permutation."""


@dataclasses.dataclass
class NetworkConfig:
    kind: str = ""
    """Architecture: value nets energy | conv | patch, inference nets mlp | fcn; "" picks
    by the output (energy / mlp for label vectors, conv / fcn for masks)."""
    filters: List[int] = dataclasses.field(default_factory=lambda: [64, 128, 128])
    """Convolutional networks: filters of the three 5×5 convolutions."""
    dense: List[int] = dataclasses.field(default_factory=lambda: [384, 192])
    """Convolutional value network: its dense layers."""
    hidden: List[int] = dataclasses.field(default_factory=lambda: [150])
    num_pairwise: int = 16
    weight_decay: float = 0.0
    dropout: float = 0.0
    activation: str = "relu"
    spen_second_layer: bool = False


@dataclasses.dataclass
class OptimizerConfig:
    name: str = "adam"
    """adam | sgd."""
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    momentum: float = 0.0
    decay_epochs: List[int] = dataclasses.field(default_factory=list)
    """Epochs after which the learning rate is multiplied by decay_factor."""
    decay_factor: float = 0.1
    clipnorm: Optional[float] = None


@dataclasses.dataclass
class RefineSettings:
    """tfsp.refine.RefineConfig without the projection (which the task decides)."""
    steps: int = 20
    step_size: float = 0.5
    normalize: bool = False
    tolerance: float = 0.0
    adam: bool = False
    """Per-element Adam on y instead of (normalized) gradient steps."""
    decay: float = 0.0
    """Step size η / (1 + decay·t) at step t."""
    best_iterate: bool = False
    """Return the iterate of highest value along the trajectory, not the last."""


@dataclasses.dataclass
class AdversarialSettings:
    steps: int = 1
    step_size: float = 0.5
    normalize: bool = False
    from_ground_truth: float = 0.5
    objective: str = "loss"
    """loss: ascend D's regression loss (the papers); value: ascend D's value (the published DVN code)."""
    best_iterate: bool = False
    """Keep, per example, the most adversarial iterate (highest objective) of the steps taken."""


@dataclasses.dataclass
class ImplicitSettings:
    """The implicit trainer (Shankar & Piratla, Algorithm 1)."""
    inner_steps: int = 1
    """T_inner: gradient steps on the inference network θ per batch."""
    neumann_terms: int = 5
    """J: terms of the von Neumann series for the inverse-Hessian-vector product."""
    neumann_step: float = 0.01
    """α of the series α·Σ_j (I − αH)^j v (needs α < 2/λ_max(H))."""
    energy_weight: float = 1.0
    """λ in L_aux = CE(y, A_θ(x)) + λ·E_φ(x, A_θ(x))."""
    cd_samples: int = 10
    """K: Bernoulli samples of A_θ(x) per example in the contrastive-divergence loss."""


@dataclasses.dataclass
class ExperimentConfig:
    task: str = ""
    method: str = ""
    algorithm: str = ""
    """The method class (feedforward | dvn | ldrsp | spen | infnet | implicit) when the method's name differs (e.g. fcn)."""
    oracle: str = ""
    """Override the task's oracle for this method (e.g. per_position_f1 for a patch discriminator)."""
    crop_mode: str = "average"
    """Segmentation test-time crops: average (refine each crop, average) or joint (DVN Table 4)."""
    select_refine_steps: bool = False
    """Before testing, pick the number of test-time refinement steps (0..test_refine.steps)
    that maximizes the primary metric on the validation split (results JSON
    `refine_steps_selected`); the papers' step counts were not tuned on this data."""
    compare_crop_modes: bool = True
    """Segmentation with refinement: also evaluate the test set with the other crop mode
    (results JSON `metrics_by_crop_mode`); one more refinement pass over the test set."""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    value_net: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    inference_net: NetworkConfig = dataclasses.field(
        default_factory=lambda: NetworkConfig(hidden=[150, 150]))
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    """Optimizer of single-network methods (feedforward, dvn)."""
    d_optimizer: OptimizerConfig = dataclasses.field(
        default_factory=lambda: OptimizerConfig(beta_1=0.5))
    g_optimizer: OptimizerConfig = dataclasses.field(
        default_factory=lambda: OptimizerConfig(beta_1=0.5))
    test_refine: RefineSettings = dataclasses.field(default_factory=RefineSettings)
    train_refine: RefineSettings = dataclasses.field(default_factory=RefineSettings)
    adversarial: AdversarialSettings = dataclasses.field(default_factory=AdversarialSettings)
    train_with_test_refine: bool = False
    """DVN: inference tuples come from exactly the test-time refinement (test_refine; with
    crop_mode average each training crop is refined as a test crop is), not train_refine."""
    inference_from_ground_truth: float = 0.0
    """DVN: fraction of the inference tuples whose refinement starts from y* instead of zeros."""
    select_crop_mode: bool = False
    """Segmentation: choose the test crop mode (average | joint) on the validation split."""
    sample_weights: Dict[str, float] = dataclasses.field(
        default_factory=lambda: {"inference": 1.0, "adversarial": 1.0})
    """DVN: weight of each kind of generated tuple (inference, adversarial, ground_truth,
    stratified, mismatched: another example's ground truth)."""
    generator_adversarial_weight: float = 1.0
    """LDRSP λ_g."""
    inference_weight: float = 1.0
    """LDRSP λ_v: weight of refined samples in D's loss."""
    adversarial_weight: float = 1.0
    """LDRSP β_v: weight of adversarial samples in D's loss."""
    g_pretrain_updates: int = 0
    """LDRSP schedule: first this many updates train G on cross-entropy alone."""
    d_warmup_updates: int = 0
    """LDRSP schedule: then this many train D alone on the frozen G's tuples; then joint training."""
    noisy_weight: float = 0.0
    """LDRSP: weight in D's loss of noisy G outputs, output_probabilities(logits + noise_std·ε)."""
    noise_std: float = 1.0
    extra_sample_weights: Dict[str, float] = dataclasses.field(default_factory=dict)
    """LDRSP: weights in D's loss of tuples made from y* alone, which the papers do not use:
    stratified (interpolations to noise), mismatched (another example's ground truth)."""
    primary_loss: str = "ssvm"
    """implicit: the outer loss, ssvm | cd | dvn (--primary_loss)."""
    implicit: ImplicitSettings = dataclasses.field(default_factory=ImplicitSettings)
    pretrain_epochs: float = 0.0
    """SPEN: epochs of logistic-loss pre-training of the feature network before SSVM training;
    implicit: epochs with λ = 0 (A_θ on cross-entropy alone) while the energy already trains."""
    infnet_test_weight: float = 1.0
    """InfNet λ (Tu & Gimpel 2018 Eq. 5): weight of the test-time inference network's hinge."""
    infnet_cross_entropy_weight: float = 1.0
    """InfNet: weight of the cross-entropy of F(x) and A(x) to y* in the networks' objective."""
    epochs: int = 10
    updates: int = 0
    """If > 0: the training budget in updates (train steps); epochs = ceil(updates / steps per
    epoch), and `epochs` is ignored."""
    checkpoint_every: int = 1
    """Write the resumable checkpoint every this many epochs (and after the last)."""
    validation_images: int = 0
    """If > 0: periodic validation (model selection, TensorBoard) scores only the first this many
    validation examples, a fixed subset; the final test pass is unaffected."""
    validation_crop_grid: int = 0
    """Segmentation, if > 0: periodic validation covers each image with this grid × grid of crops
    (cheaper than the test's crop_grid); the final test pass uses data.crop_grid."""
    mixed_precision: str = ""
    """"" (float32) or a Keras dtype policy such as mixed_bfloat16: networks compute in that
    dtype, while y, the oracles, the refinement state and the losses stay float32."""
    final_epochs_on_all_training_data: int = 0
    """After `epochs`, this many more on train ∪ validation (the published DVN schedule)."""
    validation_every: int = 1
    """Evaluate on the validation split every this many epochs (refinement makes it costly)."""
    seed: int = 0
    select_best: bool = True
    """Keep the weights of the epoch with the best validation metric."""
    select_on: str = ""
    """The validation metric model selection maximizes: "" = the final prediction's primary metric;
    e.g. "inference_net_example_f1" selects on the inference network alone."""
    jit_compile: bool = False
    deterministic: bool = False
    """tf.config.experimental.enable_op_determinism() (slower; exact reruns)."""

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    """A configuration key or value that does not fit; the message names where it came from."""


def _is_dataclass_type(t) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def merge_into(instance, overrides: Dict[str, Any], origin: str):
    """Sets fields of a (nested) dataclass from a dict; unknown keys raise ConfigError."""
    hints = typing.get_type_hints(type(instance))
    fields = {f.name for f in dataclasses.fields(instance)}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"{origin}: unknown key {key!r} in {type(instance).__name__}; "
                              f"valid keys: {sorted(fields)}")
        current = getattr(instance, key)
        if _is_dataclass_type(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: {key!r} must be an object, got {value!r}")
            merge_into(current, value, f"{origin}: {key}")
        elif isinstance(current, dict) and isinstance(value, dict):
            # Maps (e.g. sample_weights) are replaced whole: a task says all the kinds it uses.
            setattr(instance, key, dict(value))
        else:
            setattr(instance, key, _coerce(value, current, hints[key], f"{origin}: {key}"))
    return instance


def _coerce(value, current, hint, origin):
    if isinstance(current, bool) or hint is bool:
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{origin}: expected true/false, got {value!r}")
    if isinstance(current, int) and not isinstance(value, bool) and isinstance(value, (int, float)):
        if float(value) != int(value):
            raise ConfigError(f"{origin}: expected an integer, got {value!r}")
        return int(value)
    if isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def tasks_dirs() -> List[Path]:
    """Where task files are looked for: $TFSP_TASKS_DIR, the source tree, the installed copy."""
    dirs = []
    if os.environ.get(TASKS_DIR_ENV):
        dirs.append(Path(os.environ[TASKS_DIR_ENV]))
    dirs.append(Path(__file__).resolve().parent.parent / "tasks")
    dirs.append(Path(sys.prefix) / "share" / "tfsp" / "tasks")
    return dirs


def available_tasks() -> List[str]:
    names = set()
    for d in tasks_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.json"))
    return sorted(names)


def task_file(task: str) -> Path:
    candidate = Path(task)
    if candidate.suffix == ".json" and candidate.is_file():
        return candidate
    for d in tasks_dirs():
        path = d / f"{task}.json"
        if path.is_file():
            return path
    raise ConfigError(f"unknown task {task!r}; valid tasks: {available_tasks()} "
                      f"(searched {[str(d) for d in tasks_dirs()]})")


def load_task(task: str) -> Dict[str, Any]:
    path = task_file(task)
    try:
        with open(path) as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    content["_path"] = str(path)
    return content


def methods_of(task_content: Dict[str, Any]) -> List[str]:
    return sorted(task_content.get("methods", {}))


def resolve(task: str, method: Optional[str], overrides: Optional[Dict[str, Any]] = None,
            ) -> ExperimentConfig:
    """The experiment configuration for `task` and `method` (default: the task's default method)."""
    content = load_task(task)
    origin = content["_path"]
    method = method or content.get("default_method")
    valid = methods_of(content)
    if method not in valid:
        raise ConfigError(f"unknown method {method!r} for task {task!r}; valid methods: {valid}")
    config = ExperimentConfig(task=content.get("task", Path(origin).stem), method=method)
    merge_into(config, copy.deepcopy(content.get("experiment", {})), origin)
    merge_into(config, copy.deepcopy(content["methods"][method] or {}), f"{origin}: methods.{method}")
    if overrides:
        merge_into(config, overrides, "command line")
    return config


def parse_assignments(assignments: List[str]) -> Dict[str, Any]:
    """["data.batch_size=64", "test_refine.steps=30"] -> nested dict; values parsed as JSON when they can be."""
    nested: Dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set expects key.path=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parts = key.strip().split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def deep_update(base: Dict[str, Any], update: Dict[str, Any]) -> Dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base
