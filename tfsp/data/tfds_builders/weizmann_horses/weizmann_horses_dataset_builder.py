"""TFDS builder ``weizmann_horses``: the Weizmann Horse Database at its original resolutions."""

from __future__ import annotations

import tensorflow_datasets as tfds

from tfsp.data import horses
from tfsp.data.tfds_builders import manual


class WeizmannHorses(tfds.core.GeneratorBasedBuilder):
    """Colour images and figure/ground masks read with tfsp.data.horses, in file-name order."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Every image and mask, decoded by tfsp.data.horses, in file-name order."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the Weizmann Horse Database (Borenstein & Ullman), e.g. the Kaggle dataset
    "weizmann-horse-database", and put its weizmann_horse_db/ folder in the manual folder
    (or use that folder as the manual folder): rgb/horse001.jpg ... horse328.jpg (colour
    images) and figure_ground/horse001.jpg ... horse328.jpg (grey masks, foreground > 127),
    paired by file name.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "name": tfds.features.Text(doc="file stem, e.g. horse001"),
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png",
                                             doc="rgb/<name>.jpg as decoded (lossless PNG)"),
                "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png",
                                            doc="figure_ground/<name>.jpg as grey levels, foreground > 127; "
                                                "not at the image's resolution"),
            }),
            supervised_keys=("image", "mask"),
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # file-name order: tfsp's seeded split indexes it
        )

    def _split_generators(self, dl_manager):
        folder = manual.manual_folder(dl_manager)
        files = horses.find_horse_files(folder)
        manual.record_manual_files(self.info, folder, files.files())
        return {"train": self._generate_examples(files)}

    def _generate_examples(self, files: horses.HorseFiles):
        for i, (stem, image, mask) in enumerate(files.examples()):
            yield i, {"name": stem, "image": image, "mask": mask[..., None]}
