"""Experiment configuration: typed dataclasses filled from a task file plus overrides.

A task file (`tasks/<task>.json`) holds the papers' hyper-parameters:

    {"task": "bibtex", "description": ..., "references": [...],
     "experiment": {... fields of ExperimentConfig shared by all methods ...},
     "methods": {"dvn": {... DVN's settings, and overrides of the shared fields ...}, ...}}

A method's settings are the fields of the dataclass its module registered
(tfsp.methods.registry), named beside ExperimentConfig's ("test_refine": {...}) and held in
`config.settings`. The launcher resolves `ExperimentConfig` = defaults <- "experiment" <-
"methods"[method] <- command-line flags (`--set data.batch_size=64` and the named flags).
Unknown keys are errors that name the key and the file, so a typo never silently does
nothing; out-of-range values are errors of `validate` (each dataclass's RANGES).
Stored configurations of any tfsp version are read and compared by tfsp.stored_config.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional

from tfsp.config_values import ConfigError, coerce  # noqa: F401 -- ConfigError: tfsp.config's error

TASKS_DIR_ENV = "TFSP_TASKS_DIR"
DATA_DIR_ENV = "TFSP_DATA_DIR"


# ----- value ranges: a config dataclass's RANGES = {field: rule}, checked by validate() --------------
def at_least(n):
    return (lambda v: v >= n), f">= {n}"


def each(rule):
    test, text = rule
    return (lambda v: all(test(x) for x in (v.values() if isinstance(v, dict) else v))), f"all {text}"


POSITIVE = (lambda v: v > 0), "> 0"
FRACTION = (lambda v: 0 <= v < 1), "in [0, 1)"
PROBABILITY = (lambda v: 0 <= v <= 1), "in [0, 1]"
OPEN_FRACTION = (lambda v: 0 < v < 1), "in (0, 1)"

TASK_DECIDES = {"task_decides": True}
"""Metadata of a field that the task sets, not a configuration (e.g. a refinement's projection,
the task's feasible set): task files and --set may not name it, records leave it out."""


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
    validation_seed: int = -1
    """MULAN: seed of the permutation that carves the validation part out of the train part
    (tfsp.data.mulan.carve_validation); -1: split_seed. Other carves of the same train part,
    with the test part unchanged, give repeated hold-out estimates for choosing settings."""
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

    RANGES: ClassVar = {"n_train": at_least(0), "train_fraction": OPEN_FRACTION, "split_seed": at_least(0),
                        "validation_seed": at_least(-1), "validation_fraction": FRACTION, "batch_size": at_least(1),
                        "eval_batch_size": at_least(1), "image_size": at_least(1), "crop_size": at_least(0),
                        "crop_grid": at_least(1), "split_sizes": each(at_least(0))}


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

    RANGES: ClassVar = {"filters": each(at_least(1)), "dense": each(at_least(1)), "hidden": each(at_least(1)),
                        "num_pairwise": at_least(0), "weight_decay": at_least(0), "dropout": FRACTION}


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

    RANGES: ClassVar = {"learning_rate": POSITIVE, "beta_1": FRACTION, "momentum": at_least(0),
                        "decay_epochs": each(at_least(0)), "decay_factor": POSITIVE,
                        "clipnorm": ((lambda v: v is None or v > 0), "> 0 or null")}


@dataclasses.dataclass
class ExperimentConfig:
    task: str = ""
    method: str = ""
    algorithm: str = ""
    """The method class (feedforward | dvn | ldrsp | spen | infnet | implicit | gan | lsgan | wgan_gp |
    ebgan) when the method's name differs (e.g. fcn)."""
    oracle: str = ""
    """Override the task's oracle for this method (e.g. per_position_f1 for a patch discriminator)."""
    crop_mode: str = "average"
    """Segmentation test-time crops: average (refine each crop, average) or joint (DVN Table 4)."""
    select_refine_steps: bool = False
    """Before testing, pick the number of test-time refinement steps (0..test_refine.steps)
    that maximizes the primary metric on the validation split (results JSON
    `refine_steps_selected`); the papers' step counts were not tuned on this data."""
    select_refine_steps_up_to: int = 0
    """If > test_refine.steps: select_refine_steps compares 0..this many steps, while the
    periodic validation during training (model selection) keeps refining test_refine.steps."""
    compare_crop_modes: bool = True
    """Segmentation with refinement: also evaluate the test set with the other crop mode
    (results JSON `metrics_by_crop_mode`); one more refinement pass over the test set."""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    value_net: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    inference_net: NetworkConfig = dataclasses.field(
        default_factory=lambda: NetworkConfig(hidden=[150, 150]))
    select_crop_mode: bool = False
    """Segmentation: choose the test crop mode (average | joint) on the validation split."""
    select_mirror: bool = False
    """Segmentation: choose on the validation split whether test-time refinement ascends D's
    value averaged with its value on the left-right mirror images (test_refine.mirror), after
    the crop mode and before the step count; the choice is recorded (mirror_selected) and kept
    for exports."""
    prediction_threshold: float = 0.5
    """Outputs with independent elements (multi-label, binary masks): an element is predicted
    on where the relaxed output is >= this (in validation, test and exports)."""
    select_threshold: bool = False
    """Multi-label: after training, choose prediction_threshold (one for all labels, among
    0.05, 0.10, ..., 0.95) by the primary metric on the validation split, as the SPEN and
    InfNet papers tune theirs; the test pass uses it and the record keeps the choice
    (threshold_selected), and exports of the weights serve it (chosen_test_settings.json)."""
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
    early_stopping_validations: int = 0
    """If > 0 (with select_best and a validation split): stop training once this many
    validations in a row have not improved on the best; `epochs` / `updates` become a maximum
    and the best epoch's weights are kept."""
    select_on: str = ""
    """The validation metric model selection maximizes: "" = the final prediction's primary metric;
    e.g. "inference_net_example_f1" selects on the inference network alone. Several, separated by
    commas, score an epoch by the best of them: "mean_iou,inference_net_mean_iou" keeps the epoch
    whose G, refined or alone, is best, as the test step count chosen on validation (0 included)
    will use it."""
    init_checkpoint: str = ""
    """Start training from the weights another run kept: its model dir (restored with the
    configuration stored there). Only a fresh run is initialized; a resumed one continues from
    its own checkpoints. Optimizer states are not taken over."""
    init_networks: List[str] = dataclasses.field(default_factory=list)
    """With init_checkpoint: the networks to take from it (e.g. ["inference_net"] to start
    LDRSP's G from a feed-forward run); [] = every network of this method."""
    jit_compile: bool = False
    deterministic: bool = False
    """tf.config.experimental.enable_op_determinism() (slower; exact reruns)."""
    settings: Any = None
    """The settings of the method (config.algorithm or config.method): an instance of the
    dataclass its module registered (tfsp.methods.registry), e.g. its optimizers, refinement
    and loss weights. Task files and --set name its fields beside this class's ("test_refine.steps");
    records store them nested, under "settings"."""

    RANGES: ClassVar = {"epochs": at_least(1), "final_epochs_on_all_training_data": at_least(0),
                        "validation_every": at_least(1), "seed": at_least(0), "updates": at_least(0),
                        "checkpoint_every": at_least(1), "validation_images": at_least(0),
                        "validation_crop_grid": at_least(0), "early_stopping_validations": at_least(0),
                        "select_refine_steps_up_to": at_least(0), "prediction_threshold": OPEN_FRACTION}
    """epochs >= 1 because every run, trained or evaluated, has trained at least one epoch (a
    run of 0 epochs would record untrained weights)."""

    def __post_init__(self):
        self.use_method_settings()

    def use_method_settings(self) -> None:
        """Gives the config the default settings of its method if it has none, or settings of
        another method's class; leaves None for a name no module registered (resolve and
        build_method say so)."""
        name = self.algorithm or self.method
        if not name:
            return
        from tfsp.methods import registry

        settings_class = registry.settings_class(name)
        if settings_class is not None and not isinstance(self.settings, settings_class):
            self.settings = settings_class()

    def to_dict(self) -> Dict[str, Any]:
        return as_dict(self)


def _is_dataclass_type(t) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def settable_fields(instance) -> List[dataclasses.Field]:
    """The fields a task file or --set may name (those the task decides aside), and records hold."""
    return [f for f in dataclasses.fields(instance) if not f.metadata.get("task_decides")]


def as_dict(instance) -> Dict[str, Any]:
    """dataclasses.asdict without the fields the task decides (TASK_DECIDES)."""
    return {f.name: (as_dict(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value))
            for f in settable_fields(instance) for value in [getattr(instance, f.name)]}


def setting_name(path: str) -> str:
    """A field's dotted path as task files and --set name it: the method's settings beside the
    experiment's fields ("settings.test_refine.steps" -> "test_refine.steps")."""
    return path[len("settings."):] if path.startswith("settings.") else path


def merge_into(instance, overrides: Dict[str, Any], origin: str, prefix: str = ""):
    """Sets fields of a (nested) dataclass from a dict; unknown keys and values of the wrong
    type raise ConfigError naming `origin` and the field's dotted path (prefix + key).

    An ExperimentConfig takes its method's settings by their own names beside its fields
    ("test_refine": {...}), or nested under "settings" as records store them; "method" and
    "algorithm" are set first, so the keys that follow find that method's settings."""
    if isinstance(instance, ExperimentConfig):
        overrides = dict(overrides)
        for key in ("method", "algorithm"):
            if key in overrides:
                setattr(instance, key, coerce(overrides.pop(key), str, f"{origin}: {prefix}{key}"))
        instance.use_method_settings()
        if isinstance(overrides.get("settings"), dict) and instance.settings is not None:
            merge_into(instance.settings, overrides.pop("settings"), origin, prefix)
    hints = typing.get_type_hints(type(instance))
    fields = {f.name for f in settable_fields(instance)} - {"settings"}
    settings = getattr(instance, "settings", None) if isinstance(instance, ExperimentConfig) else None
    settings_fields = {f.name for f in settable_fields(settings)} if settings is not None else set()
    for key, value in overrides.items():
        path = prefix + key
        if key in settings_fields:
            merge_into(settings, {key: value}, origin, prefix)
            continue
        if key not in fields:
            owner = type(instance).__name__ + (f" or {type(settings).__name__}" if settings is not None else "")
            raise ConfigError(f"{origin}: unknown key {path!r} in {owner}; "
                              f"valid keys: {sorted(fields | settings_fields)}")
        if _is_dataclass_type(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: {path} must be an object, got {value!r}")
            merge_into(getattr(instance, key), value, origin, prefix=f"{path}.")
        else:
            # Maps (e.g. sample_weights) are replaced whole: a task says all the kinds it uses.
            setattr(instance, key, coerce(value, hints[key], f"{origin}: {path}"))
    return instance


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
    """The experiment configuration for `task` and `method` (default: the task's default method):
    defaults <- the task file's "experiment" <- its "methods"[method] <- `overrides`. A key of
    "experiment" that is another of the task's methods' setting (e.g. "d_optimizer", which the
    feed-forward baseline has not) applies to the methods that have it."""
    from tfsp.methods import registry

    content = load_task(task)
    origin = content["_path"]
    method = method or content.get("default_method")
    valid = methods_of(content)
    if method not in valid:
        raise ConfigError(f"unknown method {method!r} for task {task!r}; valid methods: {valid}")
    shared = copy.deepcopy(content.get("experiment", {}))
    section = copy.deepcopy(content["methods"][method] or {})
    algorithm = section.get("algorithm", shared.get("algorithm", ""))
    config = ExperimentConfig(task=content.get("task", Path(origin).stem), method=method, algorithm=algorithm)
    if config.settings is None:
        raise ConfigError(f"{origin}: methods.{method}: no method {algorithm or method!r} is registered "
                          f"(name one with \"algorithm\"); registered: {registry.names()}")
    own = {f.name for f in dataclasses.fields(ExperimentConfig)} | {f.name for f in settable_fields(config.settings)}
    others = {f.name for name in valid for cls in [registry.settings_class(
        (content["methods"][name] or {}).get("algorithm", shared.get("algorithm", "")) or name)]
        if cls is not None for f in settable_fields(cls)}
    merge_into(config, {k: v for k, v in shared.items() if k in own or k not in others}, origin)
    merge_into(config, section, f"{origin}: methods.{method}")
    if overrides:
        from tfsp.stored_config import renamed_settings

        merge_into(config, renamed_settings(overrides, config.settings), "command line")
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


# ----- validation -----------------------------------------------------------------------------
def _range_problems(instance, prefix: str = "") -> List[str]:
    problems = []
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            problems += _range_problems(value, setting_name(f"{prefix}{f.name}."))
        elif f.name in getattr(type(instance), "RANGES", {}):
            test, text = type(instance).RANGES[f.name]
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
    if config.init_networks and not config.init_checkpoint:
        problems.append(f"init_networks={config.init_networks} needs init_checkpoint (the run to take them from)")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return config
