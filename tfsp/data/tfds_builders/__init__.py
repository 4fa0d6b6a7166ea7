"""TFDS builders for tfsp's three datasets, prepared from the files users download.

Importing this package registers three ``tfds.core.GeneratorBasedBuilder``s:

* ``mulan`` -- any MULAN multi-label dataset by config name (``mulan/bibtex``,
  ``mulan/bookmarks``, ``mulan/<name>`` for ``<name>.arff`` + ``<name>.xml``);
* ``weizmann_horses`` -- the Weizmann Horse Database (colour images and
  figure/ground masks at their original resolutions);
* ``lfw_parts`` -- LFW Part Labels (funneled images, per-pixel class ids,
  superpixels when present) on the official train / validation / test lists.

All three take their data from a manual folder (``MANUAL_DOWNLOAD_INSTRUCTIONS``
says what to put there) and parse it with tfsp's own loaders (tfsp.data.mulan,
horses, lfw), so a malformed file is the same DataError naming the file. The
SHA-256 of every file read is recorded in ``info.metadata["manual_files_sha256"]``.

    import tensorflow_datasets as tfds
    import tfsp.data.tfds_builders  # registers the builders

    builder = tfds.builder("weizmann_horses", data_dir="~/tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="~/data"))
    ds = tfds.load("weizmann_horses", split="train", data_dir="~/tfds", download=False)

or :func:`prepare` for the first two steps. With ``--set data.reader=tfds`` the
launcher reads the prepared datasets (:mod:`tfsp.data.tfds_builders.reading`).
"""

from __future__ import annotations

from tfsp.data.tfds_builders.lfw_parts.lfw_parts_dataset_builder import LfwParts
from tfsp.data.tfds_builders.mulan.mulan_dataset_builder import Mulan
from tfsp.data.tfds_builders.weizmann_horses.weizmann_horses_dataset_builder import WeizmannHorses
from tfsp.data.tfds_builders.manual import prepare

__all__ = ["LfwParts", "Mulan", "WeizmannHorses", "prepare"]
