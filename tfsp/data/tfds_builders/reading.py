"""The launcher's ``data.reader=tfds``: tfsp's datasets read back from the prepared TFDS datasets.

Each function returns what its tfsp.data loader returns from the raw files, through the same
code after the decoding step (horses_at_size, lfw_parts_at_size: the resizing), so the arrays
are identical; the TFDS datasets hold the decoded pixels losslessly. ``data_dir`` is the TFDS
data folder (None: $TFDS_DATA_DIR or ~/tensorflow_datasets); nothing is prepared here.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from tfsp.data import horses, lfw, mulan
from tfsp.data.errors import DataError
from tfsp.data.tfds_builders import manual
from tfsp.data.tfds_builders.lfw_parts.lfw_parts_dataset_builder import LfwParts
from tfsp.data.tfds_builders.mulan.mulan_dataset_builder import Mulan
from tfsp.data.tfds_builders.weizmann_horses.weizmann_horses_dataset_builder import WeizmannHorses

__all__ = ["load_horses", "load_lfw_parts", "load_mulan"]


def _examples(builder, split: str):
    return tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))


def load_mulan(name: str, data_dir=None) -> mulan.MulanData:
    """The prepared ``mulan/<name>`` as tfsp.data.mulan.load_mulan returns it (rows in file order)."""
    builder = manual.open_prepared(Mulan, data_dir, f"holding {name}.arff and {name}.xml", config=name)
    source = manual.describe(builder)
    n = builder.info.splits["train"].num_examples
    rows = next(iter(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False).batch(n))))
    if not np.array_equal(rows["index"], np.arange(n)):
        raise DataError(f"{source}: rows are not in file order; prepare the dataset again")
    return mulan.MulanData(features=rows["features"], labels=rows["labels"].astype(np.float32),
                           feature_names=tuple(builder.info.metadata["feature_names"]),
                           label_names=tuple(builder.info.metadata["label_names"]), source=source)


def load_horses(data_dir=None, size: int = 32) -> horses.SegmentationData:
    """The prepared ``weizmann_horses`` as tfsp.data.horses.load_horses returns it."""
    builder = manual.open_prepared(WeizmannHorses, data_dir, "holding weizmann_horse_db/ (rgb/, figure_ground/)")
    source = manual.describe(builder)
    n = builder.info.splits["train"].num_examples
    examples = ((ex["name"].decode(), ex["image"], ex["mask"][..., 0]) for ex in _examples(builder, "train"))
    data = horses.horses_at_size(examples, n, size, source)
    if list(data.names) != sorted(data.names):
        raise DataError(f"{source}: examples are not in file-name order; prepare the dataset again")
    return data


def load_lfw_parts(data_dir=None, size: int = 32, split: str | None = None, *,
                   superpixels: bool = True) -> lfw.LfwPartsData:
    """One split of the prepared ``lfw_parts`` as tfsp.data.lfw.load_lfw_parts returns it."""
    if split not in lfw.SPLITS:
        raise ValueError(f"split must be one of {lfw.SPLITS}, got {split!r}")
    builder = manual.open_prepared(LfwParts, data_dir, "holding lfw_parts/ (or its contents)")
    source = manual.describe(builder)

    def examples():
        for ex in _examples(builder, split):
            name = ex["name"].decode()
            sp, sp_labels = ex["superpixels"], ex["superpixel_labels"]
            yield lfw.LfwExample(name=name, image=ex["image"], class_ids=ex["label"][..., 0],
                                 superpixels=sp if sp.size else None,
                                 superpixel_labels=sp_labels if sp.size and sp_labels.size else None,
                                 where=f"{source}: {split} example {name}")

    return lfw.lfw_parts_at_size(examples(), builder.info.splits[split].num_examples, size, split, source,
                                 superpixels=superpixels)

