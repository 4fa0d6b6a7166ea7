"""The TFDS builders (tfsp.data.tfds_builders) and data.reader=tfds, on tiny fixtures in tmp_path.

Each builder is prepared from a manual folder written by the test, loaded back offline with
tfds.load(download=False), and read by the launcher's builders through both readers, which must
give identical arrays. Errors in the files stay tfsp's DataErrors naming the file.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfsp.data.tfds_builders  # noqa: F401  (registers mulan, weizmann_horses, lfw_parts)
from conftest import correlated_multilabel, write_arff
from test_images_data import _lfw_tree, _save
from tfsp.config import DataConfig
from tfsp.data import horses, lfw, mulan
from tfsp.data.errors import DataError
from tfsp.data.tfds_builders import prepare, reading
from tfsp.datasets import build_task_data


def _prepare(name, manual_dir, data_dir):
    builder = tfds.builder(name, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_same_pipelines(a, b):
    """Two TaskData hold the same batches in every split (one epoch of the training ones)."""
    assert a.sizes == b.sizes and a.split == b.split
    for name in ("train", "validation", "test", "train_and_validation"):
        da, db = getattr(a, name), getattr(b, name)
        assert (da is None) == (db is None), name
        if da is None:
            continue
        batches_a, batches_b = list(da.as_numpy_iterator()), list(db.as_numpy_iterator())
        assert len(batches_a) == len(batches_b) > 0, name
        for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


# ---------------------------------------------------------------------------- MULAN


def test_mulan_any_name_prepares_loads_offline_and_reads_as_the_files(tmp_path):
    features, labels = correlated_multilabel(n=40, num_features=6, num_labels=4)
    folder = tmp_path / "manual" / "mulan" / "tiny"  # the layout of a data folder
    folder.mkdir(parents=True)
    arff, xml = write_arff(folder / "tiny.arff", features, labels)
    gz = folder / "tiny.arff.gz"  # compressed files are accepted
    gz.write_bytes(gzip.compress(arff.read_bytes()))
    arff.unlink()

    builder = _prepare("mulan/tiny", tmp_path / "manual", tmp_path / "tfds")
    assert builder.info.metadata["manual_files_sha256"] == {
        "mulan/tiny/tiny.arff.gz": _sha256(gz), "mulan/tiny/tiny.xml": _sha256(xml)}
    assert builder.info.metadata["label_names"] == [f"label{j}" for j in range(4)]
    assert "Katakis" in builder.info.citation

    ds = tfds.load("mulan/tiny", split="train", data_dir=str(tmp_path / "tfds"), download=False)
    rows = list(tfds.as_numpy(ds))
    assert len(rows) == 40 and [r["index"] for r in rows] == list(range(40))
    from_files = mulan.load_mulan(gz, xml)
    np.testing.assert_array_equal(np.stack([r["features"] for r in rows]), from_files.features)
    np.testing.assert_array_equal(np.stack([r["labels"] for r in rows]), labels)

    from_tfds = reading.load_mulan("tiny", tmp_path / "tfds")
    np.testing.assert_array_equal(from_tfds.features, from_files.features)
    np.testing.assert_array_equal(from_tfds.labels, from_files.labels)
    assert from_tfds.labels.dtype == np.float32
    assert (from_tfds.feature_names, from_tfds.label_names) == (from_files.feature_names, from_files.label_names)

    files = DataConfig(loader="mulan", name="tiny", data_dir=str(tmp_path / "manual"), n_train=26,
                       validation_fraction=0.2, batch_size=8, eval_batch_size=5)
    tfds_config = dataclasses.replace(files, reader="tfds", data_dir=str(tmp_path / "tfds"))
    a, b = build_task_data(files, seed=3), build_task_data(tfds_config, seed=3)
    _assert_same_pipelines(a, b)
    np.testing.assert_array_equal(a.spec.feature_mean, b.spec.feature_mean)
    np.testing.assert_array_equal(a.spec.feature_std, b.spec.feature_std)
    assert str(tmp_path / "tfds" / "mulan" / "tiny") in b.source and "prepared from" in b.source


def test_mulan_malformed_files_are_data_errors_naming_the_file(tmp_path):
    features, labels = correlated_multilabel(n=10, num_features=3, num_labels=2)
    (tmp_path / "manual").mkdir()
    _, xml = write_arff(tmp_path / "manual" / "tiny.arff", features, labels)
    xml.write_text('<labels xmlns="http://mulan.sourceforge.net/labels"><label name="nope"></label></labels>')
    with pytest.raises(DataError, match=r"named in .*tiny\.xml are not attributes of .*tiny\.arff: 'nope'"):
        _prepare("mulan/tiny", tmp_path / "manual", tmp_path / "tfds")
    with pytest.raises(DataError, match=r"MULAN dataset 'other' not found.*other\.arff"):
        _prepare("mulan/other", tmp_path / "manual", tmp_path / "tfds")
    assert not tfds.builder("mulan/tiny", data_dir=str(tmp_path / "tfds")).is_prepared()


# --------------------------------------------------------------------------- horses


def _horse_folder(root, n=6):
    """n colour JPEGs 40x30 (W x H) and grey JPEG masks 20x15, left half foreground."""
    db = root / "weizmann_horse_db"
    rng = np.random.RandomState(0)
    for i in range(1, n + 1):
        _save(rng.randint(0, 256, (30, 40, 3)).astype(np.uint8), db / "rgb" / f"horse{i:03d}.jpg", quality=90)
        mask = np.zeros((15, 20), np.uint8)
        mask[:, : 6 + i] = 255
        _save(mask, db / "figure_ground" / f"horse{i:03d}.jpg", quality=90)
    return db


def test_horses_prepare_loads_offline_and_reads_as_the_files(tmp_path):
    db = _horse_folder(tmp_path / "manual")
    prepare("weizmann_horses", data_dir=tmp_path / "tfds", manual_dir=tmp_path / "manual")
    prepared = tfds.builder("weizmann_horses", data_dir=str(tmp_path / "tfds"))  # what a later session sees
    assert prepared.info.metadata["manual_dir"] == str(tmp_path / "manual")
    digests = prepared.info.metadata["manual_files_sha256"]
    assert len(digests) == 12
    assert digests["weizmann_horse_db/figure_ground/horse006.jpg"] == _sha256(db / "figure_ground" / "horse006.jpg")

    ds = tfds.load("weizmann_horses", split="train", data_dir=str(tmp_path / "tfds"), download=False)
    examples = list(tfds.as_numpy(ds))
    assert [e["name"].decode() for e in examples] == [f"horse{i:03d}" for i in range(1, 7)]
    assert examples[0]["image"].shape == (30, 40, 3) and examples[0]["mask"].shape == (15, 20, 1)
    files = horses.find_horse_files(db)
    for example, (_, image, mask) in zip(examples, files.examples()):  # the decoded pixels, losslessly
        np.testing.assert_array_equal(example["image"], image)
        np.testing.assert_array_equal(example["mask"][..., 0], mask)

    from_files, from_tfds = horses.load_horses(db, size=8), reading.load_horses(tmp_path / "tfds", size=8)
    np.testing.assert_array_equal(from_tfds.images, from_files.images)
    np.testing.assert_array_equal(from_tfds.labels, from_files.labels)
    assert from_tfds.names == from_files.names

    files_config = DataConfig(loader="horses", data_dir=str(tmp_path / "manual"), image_size=8, crop_size=6,
                              crop_grid=2, split_sizes=[3, 1, 2], batch_size=2, eval_batch_size=2)
    tfds_config = dataclasses.replace(files_config, reader="tfds", data_dir=str(tmp_path / "tfds"))
    _assert_same_pipelines(build_task_data(files_config, seed=1), build_task_data(tfds_config, seed=1))


def test_horses_errors_name_the_file_or_folder(tmp_path):
    with pytest.raises(DataError, match=r"(?s)Manual directory .*nothing does not exist.*weizmann_horse_db"):
        prepare("weizmann_horses", data_dir=tmp_path / "tfds", manual_dir=tmp_path / "nothing")
    db = _horse_folder(tmp_path / "manual", n=2)
    (db / "figure_ground" / "horse002.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match=r"horse002\.jpg.*(unreadable|corrupt)"):
        prepare("weizmann_horses", data_dir=tmp_path / "tfds", manual_dir=tmp_path / "manual")
    (db / "figure_ground" / "horse002.jpg").unlink()
    with pytest.raises(DataError, match=r"horse002\.jpg.*image without a mask"):
        prepare("weizmann_horses", data_dir=tmp_path / "tfds", manual_dir=tmp_path / "manual")

    # Nothing prepared: the reader names the folder it looked in and how to prepare.
    config = DataConfig(loader="horses", reader="tfds", data_dir=str(tmp_path / "tfds"), split_sizes=[1, 0, 1])
    with pytest.raises(DataError, match=r"(?s)weizmann_horses.*no prepared TFDS dataset.*prepare\('weizmann_horses'"):
        build_task_data(config)
    with pytest.raises(DataError, match=r"unknown data\.reader 'tfrecords'"):
        build_task_data(dataclasses.replace(config, reader="tfrecords"))


# ------------------------------------------------------------------------------ LFW


@pytest.mark.parametrize("archive", [True, False])
def test_lfw_parts_prepare_loads_offline_and_reads_as_the_files(tmp_path, archive):
    root, truth, sp_truth = _lfw_tree(tmp_path / "manual", archive=archive, superpixels=True)
    _prepare("lfw_parts", tmp_path / "manual", tmp_path / "tfds")
    prepared = tfds.builder("lfw_parts", data_dir=str(tmp_path / "tfds"))  # metadata written by the generators
    assert prepared.info.metadata["superpixels"] == {"train": True, "validation": True, "test": True}
    assert [prepared.info.splits[s].num_examples for s in lfw.SPLITS] == [2, 1, 1]
    digests = prepared.info.metadata["manual_files_sha256"]
    assert digests["lfw_parts/parts_test.txt"] == _sha256(root / "parts_test.txt")
    labels_file = ("lfw_parts/parts_lfw_funneled_gt_images.tgz" if archive
                   else "lfw_parts/parts_lfw_funneled_gt_images/Gus_Ho_0003.ppm")
    assert labels_file in digests

    test = tfds.load("lfw_parts", split="test", data_dir=str(tmp_path / "tfds"), download=False)
    (example,) = tfds.as_numpy(test)
    assert example["name"] == b"Gus_Ho_0003" and example["image"].shape == (20, 20, 3)
    np.testing.assert_array_equal(example["label"][..., 0], truth["Gus_Ho_0003"][1])
    np.testing.assert_array_equal(example["superpixels"], sp_truth["Gus_Ho_0003"][0])
    np.testing.assert_array_equal(example["superpixel_labels"], sp_truth["Gus_Ho_0003"][1])

    for split in lfw.SPLITS:
        for superpixels in (True, False):
            a = lfw.load_lfw_parts(root, size=8, split=split, superpixels=superpixels)
            b = reading.load_lfw_parts(tmp_path / "tfds", size=8, split=split, superpixels=superpixels)
            assert a.names == b.names
            for field in ("images", "labels", "labels_full", "superpixels"):
                x, y = getattr(a, field), getattr(b, field)
                assert (x is None) == (y is None)
                np.testing.assert_array_equal(x, y)
            assert (a.superpixel_labels is None) == (b.superpixel_labels is None)
            for x, y in zip(a.superpixel_labels or (), b.superpixel_labels or ()):
                np.testing.assert_array_equal(x, y)

    files_config = DataConfig(loader="lfw", data_dir=str(tmp_path / "manual"), image_size=8, crop_size=6,
                              crop_grid=2, batch_size=1, eval_batch_size=2)
    tfds_config = dataclasses.replace(files_config, reader="tfds", data_dir=str(tmp_path / "tfds"))
    _assert_same_pipelines(build_task_data(files_config), build_task_data(tfds_config))


def test_lfw_parts_without_superpixels_and_missing_labels(tmp_path):
    root, _, _ = _lfw_tree(tmp_path / "manual", archive=False)
    builder = _prepare("lfw_parts", root, tmp_path / "tfds")  # the lfw_parts folder itself
    assert builder.info.metadata["superpixels"] == {"train": False, "validation": False, "test": False}
    test = reading.load_lfw_parts(tmp_path / "tfds", size=8, split="test")
    assert test.superpixels is None and test.superpixel_labels is None

    (root / "parts_lfw_funneled_gt_images" / "Ann_Bee_0002.ppm").unlink()
    with pytest.raises(DataError, match=r"label image\(s\) in .*parts_lfw_funneled_gt_images missing.*Ann_Bee_0002"):
        _prepare("lfw_parts", root, tmp_path / "other")
