"""From a DataConfig to a TaskSpec and batched tf.data pipelines: one builder per loader.

A task is its data (a loader registered here with `register_loader`, reading through its
module in tfsp.data) and its task file tasks/<name>.json, whose data.loader names the
loader; evaluation the task needs beyond its spec's metrics is TaskData.test_metrics."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from tfsp.config import DATA_DIR_ENV, ConfigError, DataConfig
from tfsp.data import epochs
from tfsp.data.errors import DataError
from tfsp.data.images import with_fold_channel  # noqa: F401 -- tfsp.datasets.with_fold_channel
from tfsp.spec import TaskSpec, binary_segmentation_spec, multiclass_segmentation_spec, multilabel_spec


@dataclasses.dataclass
class TaskData:
    spec: TaskSpec
    train: tf.data.Dataset
    """Shuffled (seeded, reshuffled every epoch), batched training pipeline."""
    validation: Optional[tf.data.Dataset]
    test: tf.data.Dataset
    train_and_validation: Optional[tf.data.Dataset]
    """Training pipeline over train ∪ validation (for the final epochs of some schedules)."""
    sizes: Dict[str, int]
    split: str
    """How the splits were made, in words (goes into results JSON)."""
    source: str
    train_from_epoch: Optional[Callable[[int], tf.data.Dataset]] = None
    """k -> the training pipeline as one endless stream of epochs k, k + 1, ..., epoch e's
    order and augmentation a function of (seed, e) alone (tfsp.data.epochs), so a resumed
    run trains on the batches an uninterrupted one does; fit it with steps_per_epoch."""
    train_and_validation_from_epoch: Optional[Callable[[int], tf.data.Dataset]] = None
    """The same for train ∪ validation."""
    test_metrics: Optional[Callable[[np.ndarray], Dict[str, float]]] = None
    """The task's own test metrics, beside its spec's: of one prediction of the test split (the
    relaxed outputs, in the test pipeline's order), metric name -> value, e.g. LFW's at the
    labels' original 250x250 and its superpixel accuracy. tfsp.evaluation computes them and
    the spec's metrics from the same predictions."""


BUILDERS: Dict[str, Callable[..., "TaskData"]] = {}
FOLD_LOADERS = set()
"""Loaders whose builders take training_folds (with_fold_channel)."""


def register_loader(name: str, training_folds: bool = False):
    """Decorator: `builder(config: DataConfig, seed: int) -> TaskData` reads the data of the
    loader `name` (a task file's data.loader); with training_folds, the builder also takes
    `training_folds=K` (see build_task_data)."""
    def decorator(builder):
        BUILDERS[name] = builder
        if training_folds:
            FOLD_LOADERS.add(name)
        return builder
    return decorator


def resolve_data_dir(config: DataConfig) -> Optional[str]:
    return config.data_dir or os.environ.get(DATA_DIR_ENV) or None


def no_data_dir_error(task: str, needed: str) -> DataError:
    """The error for a task run with neither --data_dir nor $TFSP_DATA_DIR; `needed` says which
    files the folder must hold and where to get them."""
    return DataError(f"no data folder for the {task} task: pass --data_dir=FOLDER or set the {DATA_DIR_ENV} "
                     f"environment variable to FOLDER, a folder holding {needed}")


def require_examples(sizes: Dict[str, int], where: str, settings: Dict[str, str]) -> None:
    """Each split in `sizes` must hold examples (an empty training split would leave fit waiting
    forever for a batch); `settings[split]` says which setting to change."""
    for split, n in sizes.items():
        if n == 0:
            raise DataError(f"{where}: the {split} split has no examples; change {settings[split]}")


def _batched(arrays, batch_size, split):
    epochs.check_batches(len(arrays[0]), batch_size, split=split, batch_setting="data.eval_batch_size")
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size).prefetch(tf.data.AUTOTUNE)


@register_loader("mulan", training_folds=True)
def build_mulan(config: DataConfig, seed: int, training_folds: int = 0) -> TaskData:
    from tfsp.data import mulan

    if not config.name and not config.arff:
        raise DataError("a MULAN task needs data.name (files <name>.arff/.xml) or data.arff and data.xml")
    name = config.name or os.path.splitext(os.path.basename(config.arff))[0]
    data_dir = resolve_data_dir(config)
    given_files = bool(config.arff or config.xml)
    shipped = mulan.find_shipped(name) if data_dir is None and not given_files else None
    if config.reader == "tfds":
        from tfsp.data.tfds_builders import reading

        if given_files:
            raise DataError(f"data.arff / data.xml name the raw files, but data.reader=tfds reads the prepared "
                            f"TFDS dataset mulan/{name}: drop them, or read the files with --set data.reader=files")
        data = reading.load_mulan(name, config.data_dir or None)
        arff_path = source = data.source
    elif shipped is not None:
        # A first run needs no download; a folder or file the user names wins.
        data = mulan.load_shipped_mulan(name, shipped)
        arff_path, xml_path = (mulan.shipped_display_path(f) for f in mulan.shipped_files(shipped, name.lower()))
        source = f"shipped copy {arff_path} + {xml_path} (MULAN)"
        logging.info("data: shipped copy %s (MULAN)", arff_path)
    elif data_dir is None and not given_files:
        not_shipped = ("" if name.lower() not in mulan.SHIPPED_DATASETS else
                       f" (the copy shipped with tfsp was not found in {', '.join(map(str, mulan.shipped_dirs(name)))})")
        raise no_data_dir_error(name, f"{name}.arff and {name}.xml (directly, in mulan/{name}/ or in {name}/)"
                                f"{not_shipped}. {mulan._obtain_hint(name)}")
    else:
        arff_path, xml_path = mulan.find_mulan_files(
            data_dir, name, arff_path=config.arff or None, xml_path=config.xml or None)
        data = mulan.load_mulan(arff_path, xml_path)
        source = f"{arff_path} + {xml_path}"
    n = len(data.features)
    if config.split == "seeded":
        n_train = config.n_train or int(round(config.train_fraction * n))
        if n_train > n:
            raise DataError(f"{arff_path}: data.n_train={n_train} but the file has {n} examples; "
                            f"--set data.n_train=N with 0 < N < {n}")
        train_idx, test_idx = mulan.seeded_split(n, n_train, config.split_seed)
        split = (f"perm = numpy.random.RandomState({config.split_seed}).permutation({n}); "
                 f"train = perm[:{n_train}], test = perm[{n_train}:]")
    else:
        raise DataError(f"unknown split {config.split!r} for {arff_path}; valid: ['seeded']")
    carve_seed = config.split_seed if config.validation_seed < 0 else config.validation_seed
    train_idx, val_idx = mulan.carve_validation(train_idx, config.validation_fraction, carve_seed)
    split += (f"; validation = {len(val_idx)} of the train rows "
              f"(tfsp.data.mulan.carve_validation, fraction {config.validation_fraction}, seed {carve_seed})")
    require_examples(
        {"train": len(train_idx), "test": len(test_idx),
         **({"validation": len(val_idx)} if config.validation_fraction > 0 else {})}, str(arff_path),
        {"train": f"data.n_train (--set data.n_train=N with 0 < N < {n}) or a smaller data.validation_fraction",
         "test": f"data.n_train (--set data.n_train=N with N < {n}; the file has {n} examples)",
         "validation": f"data.validation_fraction ({config.validation_fraction} of {len(train_idx) + len(val_idx)} "
                       "train rows is none) to a larger one, or to 0 for no validation (--set data.validation_fraction=F)"})
    x, y = data.features, data.labels
    mean = std = None
    if config.standardize:
        mean = x[train_idx].mean(axis=0)
        std = x[train_idx].std(axis=0) + 1e-6
    spec = multilabel_spec(name, x.shape[1], y.shape[1], feature_mean=mean, feature_std=std)
    validation = (_batched((x[val_idx], y[val_idx]), config.eval_batch_size, "validation")
                  if len(val_idx) else None)
    all_train = np.concatenate([train_idx, val_idx])

    def shuffled(idx, first_epoch=None, split_name="train"):
        labels = with_fold_channel(y[idx], training_folds) if training_folds else y[idx]
        return epochs.shuffled_batches((x[idx], labels), config.batch_size, seed, first_epoch, split=split_name)

    return TaskData(
        spec=spec,
        train=shuffled(train_idx),
        validation=validation,
        test=_batched((x[test_idx], y[test_idx]), config.eval_batch_size, "test"),
        train_and_validation=shuffled(all_train, split_name="train and validation"),
        train_from_epoch=lambda k: shuffled(train_idx, k),
        train_and_validation_from_epoch=lambda k: shuffled(all_train, k, "train and validation"),
        sizes={"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx)},
        split=split, source=source)


@register_loader("horses", training_folds=True)
def build_horses(config: DataConfig, seed: int, training_folds: int = 0) -> TaskData:
    from tfsp.data import horses
    from tfsp.data.images import segmentation_dataset

    data_dir = resolve_data_dir(config)
    if config.reader == "tfds":
        from tfsp.data.tfds_builders import reading

        data = reading.load_horses(config.data_dir or None, size=config.image_size)
    elif data_dir is None:
        raise no_data_dir_error("horses", "weizmann_horse_db/rgb/horseNNN.jpg and "
                                "weizmann_horse_db/figure_ground/horseNNN.jpg; " + horses._LAYOUT_HELP)
    else:
        data = horses.load_horses(data_dir, size=config.image_size)
    sizes = tuple(config.split_sizes) if config.split_sizes else horses.HORSE_SPLIT_SIZES
    split = horses.horse_split(len(data.names), seed=config.split_seed, sizes=sizes, source=data.source)
    change_sizes = f"data.split_sizes (--set data.split_sizes=[a,b,c]: train, validation, test; now {list(sizes)})"
    require_examples({k: len(v) for k, v in split.items() if k != "validation" or sizes[1]}, data.source,
                     dict.fromkeys(split, change_sizes))
    crop = config.crop_size or None
    spec = binary_segmentation_spec("horses", config.image_size, crop, config.crop_grid)

    def part(name, training, first_epoch=None):
        idx = split[name] if name != "train_and_validation" else np.concatenate(
            [split["train"], split["validation"]])
        return segmentation_dataset(data.images[idx], data.labels[idx],
                                    config.batch_size if training else config.eval_batch_size,
                                    training=training, crop_size=crop, flip=config.flip and training,
                                    seed=seed, first_epoch=first_epoch, split=name.replace("_", " "),
                                    folds=training_folds)

    description = (f"perm = numpy.random.RandomState({config.split_seed}).permutation({len(data.names)}) over the "
                   f"horse files sorted by name; train = perm[:{sizes[0]}], validation = the next {sizes[1]}, "
                   f"test = the last {sizes[2]} (tfsp.data.horses.horse_split); images and masks resized "
                   f"independently to {config.image_size}x{config.image_size}")
    return TaskData(spec=spec, train=part("train", True),
                    validation=part("validation", False) if len(split["validation"]) else None,
                    test=part("test", False), train_and_validation=part("train_and_validation", True),
                    train_from_epoch=lambda k: part("train", True, k),
                    train_and_validation_from_epoch=lambda k: part("train_and_validation", True, k),
                    sizes={k: len(v) for k, v in split.items()}, split=description, source=data.source)


def lfw_test_metrics(test) -> Callable[[np.ndarray], Dict[str, float]]:
    """LFW's test metrics at the labels' full resolution (250x250), as the LFW papers score.

    `test` is a `tfsp.data.lfw.LfwPartsData`. Of predicted class probabilities at the working
    resolution, the returned function upsamples them bilinearly to the size of `labels_full`,
    takes the arg-max (`tfsp.data.lfw.class_maps_from_scores`) and returns pixel_accuracy_250
    (percent of pixels, pooled over the test set) and, when superpixel maps and labels were
    loaded, superpixel_accuracy (percent of superpixels, `tfsp.data.lfw.superpixel_accuracy`).
    """
    from tfsp.data import lfw

    full_size = test.labels_full.shape[1:]
    superpixels = test.superpixels is not None and test.superpixel_labels is not None

    def metrics(scores) -> Dict[str, float]:
        class_maps = lfw.class_maps_from_scores(scores, full_size)
        values = {"pixel_accuracy_250": 100.0 * lfw.pixel_accuracy(class_maps, test.labels_full)}
        if superpixels:
            values["superpixel_accuracy"] = 100.0 * lfw.superpixel_accuracy(
                class_maps, test.superpixels, test.superpixel_labels)
        return values

    return metrics


@register_loader("lfw", training_folds=True)
def build_lfw(config: DataConfig, seed: int, training_folds: int = 0) -> TaskData:
    from tfsp.data import lfw
    from tfsp.data.images import segmentation_dataset

    data_dir = resolve_data_dir(config)
    load = lfw.load_lfw_parts
    if config.reader == "tfds":
        from tfsp.data.tfds_builders import reading

        load, data_dir = reading.load_lfw_parts, config.data_dir or None
    elif data_dir is None:
        raise no_data_dir_error("lfw", "LFW Part Labels (the lfw_parts folder or a parent holding lfw_parts/); "
                                + lfw._LAYOUT)
    size = config.image_size
    splits = {name: load(data_dir, size=size, split=name, superpixels=name == "test")
              for name in lfw.SPLITS}
    crop = config.crop_size or None
    spec = multiclass_segmentation_spec("lfw", size, lfw.NUM_CLASSES, crop, config.crop_grid)

    require_examples({s: len(d) for s, d in splits.items()}, splits["test"].source,
                     {s: f"its split list {lfw._LIST_FILES[s]}" for s in splits})

    def pipeline(parts, training, first_epoch=None):
        images = np.concatenate([splits[p].images for p in parts])
        labels = np.concatenate([splits[p].labels for p in parts])
        return segmentation_dataset(images, labels, config.batch_size if training else config.eval_batch_size,
                                    training=training, crop_size=crop, flip=config.flip and training,
                                    seed=seed, first_epoch=first_epoch, split=" and ".join(parts),
                                    folds=training_folds)

    test = splits["test"]
    height, width = test.labels_full.shape[1:]
    description = (f"the official LFW Part Labels lists parts_train.txt / parts_validation.txt / "
                   f"parts_test.txt ({', '.join(str(len(splits[s])) for s in lfw.SPLITS)} images); "
                   f"images and labels resized to {size}x{size} (labels: each class's antialiased "
                   f"bilinear share, arg-max); test also scored at {height}x{width} against the "
                   f"original labels (predicted class probabilities upsampled bilinearly, arg-max)")
    return TaskData(spec=spec, train=pipeline(["train"], True), validation=pipeline(["validation"], False),
                    test=pipeline(["test"], False), train_and_validation=pipeline(["train", "validation"], True),
                    train_from_epoch=lambda k: pipeline(["train"], True, k),
                    train_and_validation_from_epoch=lambda k: pipeline(["train", "validation"], True, k),
                    sizes={s: len(d) for s, d in splits.items()}, split=description, source=test.source,
                    test_metrics=lfw_test_metrics(test))


READERS = ("files", "tfds")
"""data.reader: the downloaded files, or the TFDS datasets prepared from them (tfsp.data.tfds_builders)."""


def build_task_data(config: DataConfig, seed: int = 0, training_folds: int = 0) -> TaskData:
    """The task's data; with training_folds K, the training pipelines' labels carry one more
    channel, each example's fold (with_fold_channel), for a method that needs it."""
    try:
        builder = BUILDERS[config.loader]
    except KeyError:
        raise DataError(f"unknown data loader {config.loader!r}; valid: {sorted(BUILDERS)}") from None
    if config.reader not in READERS:
        raise DataError(f"unknown data.reader {config.reader!r}; valid: {list(READERS)}")
    if config.validation_seed >= 0 and config.loader != "mulan":
        raise ConfigError(f"data.validation_seed re-carves the validation part of a MULAN train split; the "
                          f"{config.loader} loader's validation part is fixed by its split (data.split_seed)")
    if not training_folds:
        return builder(config, seed)
    if config.loader not in FOLD_LOADERS:
        raise ConfigError(f"the {config.loader} loader cannot split its training examples into folds "
                          f"(held-out folds are implemented for the {' and '.join(sorted(FOLD_LOADERS))} loaders)")
    return builder(config, seed, training_folds=training_folds)
