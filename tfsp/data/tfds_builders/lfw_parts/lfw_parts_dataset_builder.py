"""TFDS builder ``lfw_parts``: LFW Part Labels on the official lists, at the original 250x250."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from tfsp.data import lfw
from tfsp.data.tfds_builders import manual


class LfwParts(tfds.core.GeneratorBasedBuilder):
    """Funneled images, per-pixel class ids and (when present) superpixels, read with tfsp.data.lfw."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The official train / validation / test lists, decoded by tfsp.data.lfw."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put LFW Part Labels in the manual folder (or in lfw_parts/ inside it):
    from http://vis-www.cs.umass.edu/lfw/part_labels/ the pixel labels
    parts_lfw_funneled_gt_images.tgz (as downloaded, or extracted as the folder
    parts_lfw_funneled_gt_images/ of <Person>_NNNN.ppm) and the lists parts_train.txt,
    parts_validation.txt, parts_test.txt; from http://vis-www.cs.umass.edu/lfw/ the funneled
    images lfw-funneled.tgz, extracted as lfw_funneled/<Person>/<Person>_NNNN.jpg. Optional:
    the superpixels parts_lfw_funneled_superpixels_mat.tgz and their labels
    parts_lfw_funneled_gt.tgz from the part-labels page (as downloaded or extracted).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "name": tfds.features.Text(doc="Person_Name_NNNN"),
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png",
                                             doc="lfw_funneled/<Person>/<name>.jpg as decoded (lossless PNG)"),
                "label": tfds.features.Image(shape=(None, None, 1), encoding_format="png", use_colormap=True,
                                             doc="class id per pixel: 0 hair, 1 face, 2 background"),
                "superpixels": tfds.features.Tensor(shape=(None, None), dtype=np.int32, encoding="zlib",
                                                    doc="superpixel id per pixel; empty [0, 0] when the "
                                                        "superpixel maps were not in the manual folder"),
                "superpixel_labels": tfds.features.Tensor(shape=(None,), dtype=np.int32,
                                                          doc="class id per superpixel; empty when absent"),
            }),
            supervised_keys=("image", "label"),
            homepage="http://vis-www.cs.umass.edu/lfw/part_labels/",
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # list order
        )

    def _split_generators(self, dl_manager):
        folder = manual.manual_folder(dl_manager)
        self.info.metadata["superpixels"] = {}
        # Each split is read when its turn comes, so the label images of one split at a time are in memory.
        return {split: self._generate_examples(folder, split) for split in lfw.SPLITS}

    def _generate_examples(self, folder, split: str):
        files = lfw.find_lfw_split(folder, split, superpixels=True)
        manual.record_manual_files(self.info, folder, files.files())
        self.info.metadata["superpixels"][split] = files.superpixels is not None
        no_map, no_labels = np.zeros((0, 0), np.int32), np.zeros((0,), np.int32)
        for i, ex in enumerate(files.examples()):
            yield i, {
                "name": ex.name,
                "image": ex.image,
                "label": ex.class_ids[..., None],
                "superpixels": no_map if ex.superpixels is None else ex.superpixels,
                "superpixel_labels": no_labels if ex.superpixel_labels is None else ex.superpixel_labels,
            }
