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
import math
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
    reader: str = "files"
    """files: read the downloaded files themselves; tfds: read the TFDS dataset prepared from them
    (tfsp.data.tfds_builders: mulan/<name>, weizmann_horses, lfw_parts), with data_dir the TFDS
    data folder (empty: $TFDS_DATA_DIR or ~/tensorflow_datasets). Same arrays, splits and resizing."""
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


def merge_into(instance, overrides: Dict[str, Any], origin: str, prefix: str = ""):
    """Sets fields of a (nested) dataclass from a dict; unknown keys and values of the wrong
    type raise ConfigError naming `origin` and the field's dotted path (prefix + key)."""
    hints = typing.get_type_hints(type(instance))
    fields = {f.name for f in dataclasses.fields(instance)}
    for key, value in overrides.items():
        path = prefix + key
        if key not in fields:
            raise ConfigError(f"{origin}: unknown key {path!r} in {type(instance).__name__}; "
                              f"valid keys: {sorted(fields)}")
        if _is_dataclass_type(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: {path} must be an object, got {value!r}")
            merge_into(getattr(instance, key), value, origin, prefix=f"{path}.")
        else:
            # Maps (e.g. sample_weights) are replaced whole: a task says all the kinds it uses.
            setattr(instance, key, _coerce(value, hints[key], f"{origin}: {path}"))
    return instance


class _WrongType(Exception):
    pass


_TYPE_NAMES = {int: ("an integer", "integers", "150"), float: ("a number", "numbers", "0.5"),
               str: ("a string", "strings", '"name"'), bool: ("true or false", "booleans", "true")}
"""For error messages: (one, several, an example)."""


def _describe(hint) -> str:
    """What a value of type `hint` looks like, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return " or ".join([_describe(a) for a in args if a is not type(None)] + ["null"])
    if origin is list:
        _, several, example = _TYPE_NAMES[args[0]]
        return f"a list of {several}, e.g. [{example}]"
    if origin is dict:
        _, several, example = _TYPE_NAMES[args[1]]
        return f'an object of {several}, e.g. {{"name": {example}}}'
    return _TYPE_NAMES[hint][0] if hint in _TYPE_NAMES else str(hint)


def _coerce(value, hint, where: str):
    """`value` as the field type `hint` (int, float, bool, str, Optional, List[...], Dict[str, ...]),
    e.g. 64 -> 64.0 for a float or "true" -> True; anything else raises ConfigError."""
    try:
        return _coerce_value(value, hint)
    except _WrongType:
        raise ConfigError(f"{where}: expected {_describe(hint)}, got {value!r}") from None


def _coerce_value(value, hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce_value(value, next(a for a in args if a is not type(None)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _WrongType
        return [_coerce_value(v, args[0]) for v in value]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _WrongType
        return {k: _coerce_value(v, args[1]) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise _WrongType
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        if not is_number or not math.isfinite(value) or float(value) != int(value):
            raise _WrongType
        return int(value)
    if hint is float:
        if not is_number:
            raise _WrongType
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _WrongType
        return value
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


# ----- comparing configurations ---------------------------------------------------------------
LOCATION_FIELDS = ("data.data_dir", "data.arff", "data.xml", "data.eval_batch_size")
"""Fields that say where the data is read from and how many test examples go in a batch: the
same files may move between machines, and neither changes a trained weight or a metric."""


def leaf_fields(instance, prefix: str = "") -> Dict[str, Any]:
    """{"data.batch_size": 32, "sample_weights": {...}, ...}: every field of a (nested) config
    dataclass that is not itself a dataclass, by its dotted path."""
    leaves: Dict[str, Any] = {}
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            leaves.update(leaf_fields(value, f"{prefix}{f.name}."))
        else:
            leaves[prefix + f.name] = copy.deepcopy(value)
    return leaves


def config_differences(stored: Dict[str, Any], config: ExperimentConfig,
                       may_differ=()) -> List[tuple]:
    """[(field, stored value, value in config)] for every field whose value in `config` differs
    from `stored` (an ExperimentConfig.to_dict(): a model dir's config.json, a record's "config").
    A field `stored` lacks counts at its default, as the code behaved before the field existed;
    fields of `stored` that no longer exist are not settings any more and are ignored. Fields
    named in `may_differ` (dotted paths, or a prefix such as "test_refine") are skipped."""
    defaults = leaf_fields(ExperimentConfig())
    differences = []
    for path, value in leaf_fields(config).items():
        if any(path == name or path.startswith(name + ".") for name in may_differ):
            continue
        node: Any = stored
        for part in path.split("."):
            node = node.get(part, defaults[path]) if isinstance(node, dict) else defaults[path]
        if node != value:
            differences.append((path, node, value))
    return differences


def describe_differences(differences, stored_name: str) -> str:
    """"seed: 0 in <stored_name>, 1 now; ..." for config_differences' list."""
    return "; ".join(f"{path}: {json.dumps(old)} in {stored_name}, {json.dumps(new)} now"
                     for path, old, new in differences)


def assignments_for(differences) -> str:
    """The --set flags that restore the stored values of config_differences' list."""
    import shlex

    return " ".join(f"--set {shlex.quote(f'{path}={json.dumps(old)}')}" for path, old, _ in differences)


# ----- value ranges -----------------------------------------------------------------------------
def _at_least(n):
    return (lambda v: v >= n), f">= {n}"


def _each(rule):
    test, text = rule
    return (lambda v: all(test(x) for x in (v.values() if isinstance(v, dict) else v))), f"all {text}"


_POSITIVE = (lambda v: v > 0), "> 0"
_FRACTION = (lambda v: 0 <= v < 1), "in [0, 1)"
_PROBABILITY = (lambda v: 0 <= v <= 1), "in [0, 1]"
_OPEN_FRACTION = (lambda v: 0 < v < 1), "in (0, 1)"

_RANGES = {
    DataConfig: {"n_train": _at_least(0), "train_fraction": _OPEN_FRACTION, "split_seed": _at_least(0),
                 "validation_fraction": _FRACTION, "batch_size": _at_least(1), "eval_batch_size": _at_least(1),
                 "image_size": _at_least(1), "crop_size": _at_least(0), "crop_grid": _at_least(1),
                 "split_sizes": _each(_at_least(0))},
    NetworkConfig: {"filters": _each(_at_least(1)), "dense": _each(_at_least(1)), "hidden": _each(_at_least(1)),
                    "num_pairwise": _at_least(0), "weight_decay": _at_least(0), "dropout": _FRACTION},
    OptimizerConfig: {"learning_rate": _POSITIVE, "beta_1": _FRACTION, "momentum": _at_least(0),
                      "decay_epochs": _each(_at_least(0)), "decay_factor": _POSITIVE,
                      "clipnorm": ((lambda v: v is None or v > 0), "> 0 or null")},
    RefineSettings: {"steps": _at_least(0), "step_size": _POSITIVE, "tolerance": _at_least(0),
                     "decay": _at_least(0)},
    AdversarialSettings: {"steps": _at_least(0), "step_size": _POSITIVE, "from_ground_truth": _PROBABILITY},
    ImplicitSettings: {"inner_steps": _at_least(0), "neumann_terms": _at_least(0), "neumann_step": _POSITIVE,
                       "energy_weight": _at_least(0), "cd_samples": _at_least(1)},
    ExperimentConfig: {"epochs": _at_least(1), "final_epochs_on_all_training_data": _at_least(0),
                       "validation_every": _at_least(1), "seed": _at_least(0), "pretrain_epochs": _at_least(0),
                       "sample_weights": _each(_at_least(0)), "extra_sample_weights": _each(_at_least(0)),
                       "generator_adversarial_weight": _at_least(0), "inference_weight": _at_least(0),
                       "adversarial_weight": _at_least(0), "infnet_test_weight": _at_least(0),
                       "infnet_cross_entropy_weight": _at_least(0),
                       "updates": _at_least(0), "checkpoint_every": _at_least(1),
                       "validation_images": _at_least(0), "validation_crop_grid": _at_least(0),
                       "inference_from_ground_truth": _PROBABILITY, "g_pretrain_updates": _at_least(0),
                       "d_warmup_updates": _at_least(0), "noisy_weight": _at_least(0),
                       "noise_std": _at_least(0)},
}
"""The values each field may take; epochs >= 1 because every run, trained or evaluated, has
trained at least one epoch (a run of 0 epochs would record untrained weights)."""


def _range_problems(instance, prefix: str = "") -> List[str]:
    problems = []
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            problems += _range_problems(value, f"{prefix}{f.name}.")
        elif f.name in _RANGES.get(type(instance), {}):
            test, text = _RANGES[type(instance)][f.name]
            try:
                ok = bool(test(value))
            except TypeError:
                ok = False
            if not ok:
                problems.append(f"{prefix}{f.name}={json.dumps(value)} (must be {text})")
    return problems


def validate(config: ExperimentConfig) -> ExperimentConfig:
    """Raises ConfigError naming every field whose value is out of range (epochs < 1, a negative
    step count, a step size or learning rate <= 0, a batch size < 1, a fraction outside [0, 1), ...),
    so a bad value stops a run before it writes anything."""
    problems = _range_problems(config)
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return config
