"""TFDS builder ``mulan``: a MULAN multi-label dataset (``<name>.arff`` + ``<name>.xml``) by config name."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from tfsp.data import mulan
from tfsp.data.tfds_builders import manual

_KNOWN = {
    "bibtex": "Bibtex (Katakis et al. 2008): 7395 BibSonomy entries, 1836 binary bag-of-words "
              "features, 159 tags. Shipped with tfsp under third_party/bibtex/ (gzip files).",
    "bookmarks": "Bookmarks (Katakis et al. 2008): 87856 BibSonomy bookmarks, 2150 features, 208 tags.",
}


def _other_config(name: str) -> tfds.core.BuilderConfig:
    return tfds.core.BuilderConfig(name=name, description=f"The MULAN dataset {name} ({name}.arff + {name}.xml).")


class Mulan(tfds.core.GeneratorBasedBuilder):
    """A MULAN dataset read with tfsp.data.mulan: rows in file order, one ``train`` split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Every row of <name>.arff in file order, parsed by tfsp.data.mulan.load_mulan."}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=n, description=d) for n, d in _KNOWN.items()]
    DEFAULT_BUILDER_CONFIG_NAME = "bibtex"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Download the dataset's ARFF file and MULAN label XML from the MULAN datasets page
    {mulan.MULAN_URL} (for mulan/<name>: <name>.arff and <name>.xml; mulan/bibtex needs
    bibtex.arff and bibtex.xml) and put both in the manual folder, directly or in
    mulan/<name>/ or <name>/ inside it. Either file may be gzip-compressed (<name>.arff.gz).
    Bibtex also ships with tfsp: third_party/bibtex/ of the repository is a manual folder for
    mulan/bibtex. A dataset MULAN distributes as <name>-train.arff and <name>-test.arff needs
    the two concatenated (one header) into <name>.arff.
    """

    _other_configs: dict = {}

    @classmethod
    def get_builder_config(cls, name, version=None):
        """Any name is a config: ``mulan/<name>`` reads ``<name>.arff`` and ``<name>.xml``."""
        config = super().get_builder_config(name, version)
        if config is None and name:
            config = cls._other_configs.setdefault(name, _other_config(name))
        return config

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "index": tfds.features.Scalar(np.int64, doc="0-based row in the ARFF file"),
                "features": tfds.features.Tensor(shape=(None,), dtype=np.float32,
                                                 doc="feature attributes in ARFF order; missing values NaN"),
                "labels": tfds.features.Tensor(shape=(None,), dtype=np.uint8,
                                               doc="0/1 per label, in the order of the label XML"),
            }),
            supervised_keys=("features", "labels"),
            homepage=mulan.MULAN_URL,
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # rows in file order: tfsp's seeded split indexes them
        )

    def _split_generators(self, dl_manager):
        folder = manual.manual_folder(dl_manager)
        name = self.builder_config.name
        arff_path, xml_path = mulan.find_mulan_files(folder, name)
        data = mulan.load_mulan(arff_path, xml_path)
        manual.record_manual_files(self.info, folder, [arff_path, xml_path])
        self.info.metadata["feature_names"] = list(data.feature_names)
        self.info.metadata["label_names"] = list(data.label_names)
        return {"train": self._generate_examples(data)}

    def _generate_examples(self, data: mulan.MulanData):
        labels = data.labels.astype(np.uint8)
        for i in range(data.num_examples):
            yield i, {"index": i, "features": data.features[i], "labels": labels[i]}
