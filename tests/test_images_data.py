"""Tests for tfsp.data.images / horses / lfw.

Offline: every fixture is written into tmp_path by the test. The tests at the
end run on the real data only if it is present (TFSP_DATA_DIR, else
/work/shared/data) and are skipped otherwise.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfsp.data.errors import DataError
from tfsp.data.horses import SegmentationData, horse_split, load_horses
from tfsp.data.images import (
    decode_image,
    decode_mask,
    read_ppm,
    resize_bilinear,
    resize_mask,
    resize_one_hot,
    segmentation_dataset,
)
from tfsp.data.lfw import (
    CLASS_NAMES,
    class_maps_from_scores,
    load_lfw_parts,
    pixel_accuracy,
    ppm_to_class_ids,
    read_split_list,
    read_superpixel_labels,
    read_superpixel_map,
    superpixel_accuracy,
    superpixel_labels_from_pixels,
)

DATA_DIR = Path(os.environ.get("TFSP_DATA_DIR", "/work/shared/data"))

# ---------------------------------------------------------------------------
# Helpers writing fixtures.


def _save(img: np.ndarray, path: Path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, **kw)


def _ppm_bytes(rgb: np.ndarray) -> bytes:
    h, w, _ = rgb.shape
    return b"P6\n# written by the test\n%d %d\n255\n" % (w, h) + rgb.astype(np.uint8).tobytes()


def _horse_tree(root: Path, n: int = 3) -> Path:
    """rgb 40x30 (W x H) colour JPEGs, masks 20x15 grey PNG: left half foreground."""
    db = root / "weizmann_horse_db"
    for i in range(1, n + 1):
        rgb = np.zeros((30, 40, 3), np.uint8)
        rgb[...] = (40 * i % 256, 100, 200)
        _save(rgb, db / "rgb" / f"horse{i:03d}.jpg", quality=95)
        mask = np.zeros((15, 20), np.uint8)
        mask[:, :10] = 255
        _save(mask, db / "figure_ground" / f"horse{i:03d}.png")
    return db


# ---------------------------------------------------------------------------
# Image helpers.


def test_read_ppm_p6_p3_and_errors(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    p6 = tmp_path / "a.ppm"
    p6.write_bytes(_ppm_bytes(rgb))
    np.testing.assert_array_equal(read_ppm(p6), rgb)
    p3 = tmp_path / "b.ppm"
    p3.write_text("P3\n3 2\n# comment\n255\n" + " ".join(str(v) for v in rgb.ravel()) + "\n")
    np.testing.assert_array_equal(read_ppm(p3), rgb)
    # Matches Pillow's reading of the same file.
    np.testing.assert_array_equal(np.asarray(Image.open(p6)), rgb)

    bad = tmp_path / "bad.ppm"
    bad.write_bytes(b"P5\n3 2\n255\n" + bytes(6))
    with pytest.raises(DataError, match="bad.ppm.*not a PPM"):
        read_ppm(bad)
    short = tmp_path / "short.ppm"
    short.write_bytes(_ppm_bytes(rgb)[:-5])
    with pytest.raises(DataError, match="short.ppm.*truncated"):
        read_ppm(short)
    with pytest.raises(DataError, match="missing.ppm"):
        read_ppm(tmp_path / "missing.ppm")


def test_decode_mask_three_channel(tmp_path):
    grey = np.zeros((10, 12), np.uint8)
    grey[:, 6:] = 255
    rgb = np.stack([grey, grey, np.clip(grey.astype(int) + 3, 0, 255).astype(np.uint8)], -1)
    _save(rgb, tmp_path / "m.png")
    np.testing.assert_allclose(decode_mask(tmp_path / "m.png"), grey, atol=2)
    colour = rgb.copy()
    colour[..., 0] = 0
    _save(colour, tmp_path / "c.png")
    with pytest.raises(DataError, match="c.png.*mask is not single-channel"):
        decode_mask(tmp_path / "c.png")


def test_resize_helpers():
    img = np.full((30, 40, 3), 255, np.uint8)
    out = resize_bilinear(img, 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    mask = np.zeros((15, 20), np.uint8)
    mask[:, :10] = 255
    m = resize_mask(mask, 8)
    assert set(np.unique(m)) == {0.0, 1.0}
    np.testing.assert_array_equal(m[:, :4], 1)
    np.testing.assert_array_equal(m[:, 4:], 0)
    ids = np.zeros((1, 20, 20), np.uint8)
    ids[0, 10:] = 2
    oh = resize_one_hot(ids, 4, 3)
    assert oh.shape == (1, 4, 4, 3)
    np.testing.assert_array_equal(oh.sum(-1), 1)
    np.testing.assert_array_equal(oh[0, :2, :, 0], 1)
    np.testing.assert_array_equal(oh[0, 2:, :, 2], 1)


# ---------------------------------------------------------------------------
# Horses.


def test_load_horses_mismatched_resolutions(tmp_path):
    db = _horse_tree(tmp_path)
    for where in (db, tmp_path):  # the folder itself or its parent
        data = load_horses(where, size=8)
        assert isinstance(data, SegmentationData)
        assert data.images.shape == (3, 8, 8, 3) and data.images.dtype == np.float32
        assert data.labels.shape == (3, 8, 8, 1) and data.labels.dtype == np.float32
        assert data.names == ("horse001", "horse002", "horse003")
        assert data.source == str(db)
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    np.testing.assert_allclose(data.images[1, ..., 0], 80 / 255, atol=0.03)
    np.testing.assert_allclose(data.images[1, ..., 2], 200 / 255, atol=0.03)
    np.testing.assert_array_equal(data.labels[:, :, :4], 1)
    np.testing.assert_array_equal(data.labels[:, :, 4:], 0)
    sub = data.subset([2, 0])
    assert sub.names == ("horse003", "horse001") and len(sub) == 2


def test_horses_three_channel_jpeg_mask_accepted(tmp_path):
    db = _horse_tree(tmp_path, n=1)
    (db / "figure_ground" / "horse001.png").unlink()
    grey = np.zeros((15, 20), np.uint8)
    grey[:, :10] = 255
    _save(np.repeat(grey[..., None], 3, -1), db / "figure_ground" / "horse001.jpg", quality=90)
    assert Image.open(db / "figure_ground" / "horse001.jpg").mode == "RGB"
    data = load_horses(db, size=8)
    np.testing.assert_array_equal(data.labels[0, :, :4], 1)
    np.testing.assert_array_equal(data.labels[0, :, 4:], 0)


def test_horses_colour_mask_rejected(tmp_path):
    db = _horse_tree(tmp_path, n=2)
    colour = np.zeros((15, 20, 3), np.uint8)
    colour[:, :10] = (255, 0, 0)
    (db / "figure_ground" / "horse002.png").unlink()
    _save(colour, db / "figure_ground" / "horse002.png")
    with pytest.raises(DataError, match=r"horse002\.png.*mask is not single-channel"):
        load_horses(db, size=8)


def test_horses_missing_pairs_and_corrupt(tmp_path):
    db = _horse_tree(tmp_path, n=3)
    (db / "figure_ground" / "horse002.png").unlink()
    with pytest.raises(DataError, match=r"horse002\.jpg.*image without a mask"):
        load_horses(db, size=8)
    (db / "rgb" / "horse002.jpg").unlink()
    _save(np.zeros((15, 20), np.uint8), db / "figure_ground" / "horse004.png")
    with pytest.raises(DataError, match=r"horse004\.png.*mask without an image"):
        load_horses(db, size=8)
    (db / "figure_ground" / "horse004.png").unlink()
    (db / "rgb" / "horse003.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match=r"horse003\.jpg.*(unreadable|corrupt)"):
        load_horses(db, size=8)


def test_horses_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"rgb/horseNNN\.jpg.*figure_ground/horseNNN\.jpg.*Weizmann"):
        load_horses(tmp_path / "nowhere")
    (tmp_path / "rgb").mkdir()
    with pytest.raises(DataError, match="figure_ground"):
        load_horses(tmp_path)


def test_horse_split():
    s = horse_split()
    assert {k: len(v) for k, v in s.items()} == {"train": 200, "validation": 28, "test": 100}
    allidx = np.concatenate([s["train"], s["validation"], s["test"]])
    np.testing.assert_array_equal(np.sort(allidx), np.arange(328))
    perm = np.random.RandomState(0).permutation(328)
    np.testing.assert_array_equal(s["train"], perm[:200])
    np.testing.assert_array_equal(s["validation"], perm[200:228])
    np.testing.assert_array_equal(s["test"], perm[228:])
    again = horse_split(328, 0)
    for k in s:
        np.testing.assert_array_equal(s[k], again[k])
    assert not np.array_equal(horse_split(seed=1)["test"], s["test"])
    with pytest.raises(ValueError):
        horse_split(n=100)


def _horses_config(data_dir, split_sizes):
    from tfsp.config import DataConfig

    return DataConfig(loader="horses", data_dir=str(data_dir), image_size=8, crop_size=0,
                      split_sizes=list(split_sizes), batch_size=2, eval_batch_size=2)


def test_horse_count_not_fitting_split_sizes_names_folder_count_sizes_and_setting(tmp_path):
    from tfsp.datasets import build_task_data

    db = _horse_tree(tmp_path, n=10)
    with pytest.raises(DataError) as e:
        build_task_data(_horses_config(tmp_path, [200, 28, 100]))
    msg = str(e.value)
    for part in (str(db), "10 horse images found", "[200, 28, 100]", "--set data.split_sizes=[a,b,c]",
                 "--set data.split_sizes=[6,1,3]"):
        assert part in msg, (part, msg)
    data = build_task_data(_horses_config(tmp_path, [6, 1, 3]))
    assert data.sizes == {"train": 6, "validation": 1, "test": 3}
    with pytest.raises(DataError, match=rf"{db}: the train split has no examples; change data\.split_sizes \(--set data\.split_sizes=\[a,b,c\]"):
        build_task_data(_horses_config(tmp_path, [0, 1, 9]))
    assert build_task_data(_horses_config(tmp_path, [7, 0, 3])).validation is None


@pytest.mark.parametrize("loader, files, source", [
    ("horses", "weizmann_horse_db/rgb/horseNNN.jpg", "weizmann-horse-database"),
    ("lfw", "parts_lfw_funneled_gt_images.tgz", "http://vis-www.cs.umass.edu/lfw/part_labels/"),
])
def test_no_data_dir_names_the_flag_the_variable_the_files_and_the_source(loader, files, source, monkeypatch):
    from tfsp.config import DataConfig
    from tfsp.datasets import build_task_data

    monkeypatch.delenv("TFSP_DATA_DIR", raising=False)
    with pytest.raises(DataError) as e:
        build_task_data(DataConfig(loader=loader))
    msg = str(e.value)
    for part in ("--data_dir", "TFSP_DATA_DIR", files, source):
        assert part in msg, (part, msg)


# ---------------------------------------------------------------------------
# Segmentation pipeline.


def _position_data(n=5, c=1):
    """image = (row/31, col/31, example/n); label channel k = code(row, col) + k."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    images = np.zeros((n, 32, 32, 3), np.float32)
    images[..., 0] = rows / 31
    images[..., 1] = cols / 31
    images[..., 2] = (np.arange(n) / n)[:, None, None]
    code = (rows * 32 + cols) / 1024.0
    labels = np.stack([np.broadcast_to(code + k, (n, 32, 32)) for k in range(c)], -1).astype(np.float32)
    return images, labels


def _collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("c", [1, 3])
def test_segmentation_dataset_training_crops(c):
    images, labels = _position_data(n=6, c=c)
    ds = segmentation_dataset(images, labels, 4, training=True, seed=7)
    x, y = _collect(ds)
    assert x.shape == (6, 24, 24, 3) and y.shape == (6, 24, 24, c)
    rows = np.round(x[..., 0] * 31).astype(int)
    cols = np.round(x[..., 1] * 31).astype(int)
    # Same window and same flip for image and label, pixel by pixel.
    for k in range(c):
        np.testing.assert_allclose(y[..., k], (rows * 32 + cols) / 1024.0 + k, atol=1e-5)
    # Each crop is a contiguous 24x24 window, possibly mirrored left-right.
    flipped = []
    for i in range(len(x)):
        r0, c0 = rows[i, 0, 0], cols[i, 0, 0]
        np.testing.assert_array_equal(rows[i], r0 + np.arange(24)[:, None] + 0 * cols[i])
        step = cols[i, 0, 1] - cols[i, 0, 0]
        assert step in (1, -1)
        np.testing.assert_array_equal(cols[i], c0 + step * np.arange(24)[None, :] + 0 * rows[i])
        flipped.append(step == -1)
    # All examples present once per epoch (shuffled).
    ex = np.round(x[:, 0, 0, 2] * 6).astype(int)
    assert sorted(ex) == list(range(6))

    # Deterministic given the seed, epoch by epoch; different across epochs.
    ds2 = segmentation_dataset(images, labels, 4, training=True, seed=7)
    e1a, e2a = x, _collect(ds)[0]  # ds's first epoch was collected above
    e1b, e2b = _collect(ds2)[0], _collect(ds2)[0]
    np.testing.assert_array_equal(e1a, e1b)
    np.testing.assert_array_equal(e2a, e2b)
    assert not np.array_equal(e1a, e2a)
    assert not np.array_equal(_collect(segmentation_dataset(images, labels, 4, training=True, seed=8))[0], e1b)


def test_segmentation_dataset_flip_and_crop_vary():
    images, labels = _position_data(n=64)
    x, _ = _collect(segmentation_dataset(images, labels, 64, training=True, seed=0))
    step = np.round((x[:, 0, 1, 1] - x[:, 0, 0, 1]) * 31).astype(int)
    assert 10 < np.sum(step == -1) < 54  # about half flipped
    origins = {(round(a * 31), round(b * 31)) for a, b in zip(x[:, 0, 0, 0], x[:, :, :, 1].min(axis=(1, 2)))}
    assert len(origins) > 10
    x, _ = _collect(segmentation_dataset(images, labels, 64, training=True, seed=0, flip=False))
    assert np.all(x[:, 0, 1, 1] > x[:, 0, 0, 1])


def test_segmentation_dataset_eval():
    images, labels = _position_data(n=5, c=3)
    ds = segmentation_dataset(images, labels, 2, training=False, seed=0)
    sizes = [int(x.shape[0]) for x, _ in ds]
    assert sizes == [2, 2, 1]
    x, y = _collect(ds)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(ValueError):
        segmentation_dataset(images, labels[:, :16], 2, training=False, seed=0)


# ---------------------------------------------------------------------------
# LFW Part Labels.

_LFW_PEOPLE = [("Ann_Bee", 1), ("Ann_Bee", 2), ("Carl_Dee_Eff", 1), ("Gus_Ho", 3)]
_LISTS = {"train": [0, 2], "validation": [1], "test": [3]}
_RED, _GREEN, _BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _lfw_label_image(i, size=20):
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[...] = _BLUE
    rgb[: 4 + i, :] = _RED
    rgb[4 + i : 12, 5:15] = _GREEN
    rgb[0, 0] = (200, 30, 40)  # an off colour, still hair
    ids = np.full((size, size), 2, np.uint8)
    ids[: 4 + i, :] = 0
    ids[4 + i : 12, 5:15] = 1
    return rgb, ids


def _lfw_tree(root: Path, *, archive=True, size=20, superpixels=False):
    lfw = root / "lfw_parts"
    truth = {}
    for i, (person, k) in enumerate(_LFW_PEOPLE):
        name = f"{person}_{k:04d}"
        img = np.zeros((size, size, 3), np.uint8)
        img[...] = (10 * i, 50, 100)
        _save(img, lfw / "lfw_funneled" / person / f"{name}.jpg", quality=95)
        truth[name] = _lfw_label_image(i, size)
    for split, idx in _LISTS.items():
        lines = "".join(f"{_LFW_PEOPLE[i][0]} {_LFW_PEOPLE[i][1]}\n" for i in idx)
        (lfw / f"parts_{split}.txt").write_text(lines)
    if archive:
        with tarfile.open(lfw / "parts_lfw_funneled_gt_images.tgz", "w:gz") as tar:
            for name, (rgb, _) in truth.items():
                data = _ppm_bytes(rgb)
                info = tarfile.TarInfo(f"parts_lfw_funneled_gt_images/{name}.ppm")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    else:
        folder = lfw / "parts_lfw_funneled_gt_images"
        folder.mkdir()
        for name, (rgb, _) in truth.items():
            (folder / f"{name}.ppm").write_bytes(_ppm_bytes(rgb))
    sp_truth = {}
    if superpixels:
        for name in truth:
            person = name.rsplit("_", 1)[0]
            sp = (np.arange(size)[:, None] // 5) * (size // 5) + np.arange(size)[None, :] // 5
            _write_sp(lfw / "parts_lfw_funneled_superpixels_mat" / person / f"{name}.dat", sp)
            labels = np.random.RandomState(len(name)).randint(0, 3, sp.max() + 1)
            _write_gt(lfw / "parts_lfw_funneled_gt" / person / f"{name}.dat", labels)
            sp_truth[name] = (sp, labels)
    return lfw, truth, sp_truth


def _write_sp(path: Path, sp: np.ndarray):
    """The *_SP.dat format of the example: one row per line, trailing space, CRLF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((" ".join(str(v) for v in row) + " \r\n").encode() for row in sp))


def _write_gt(path: Path, labels: np.ndarray):
    """The *_GT.dat format of the example: count, then one class id a line, CRLF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join([str(len(labels))] + [str(v) for v in labels]) + "\r\n").encode())


@pytest.mark.parametrize("archive", [True, False])
def test_load_lfw_parts(tmp_path, archive):
    lfw, truth, _ = _lfw_tree(tmp_path, archive=archive)
    for where in (lfw, tmp_path):
        d = load_lfw_parts(where, size=8, split="train")
        assert d.names == ("Ann_Bee_0001", "Carl_Dee_Eff_0001")
        assert d.source == str(lfw) and d.split == "train"
    assert d.images.shape == (2, 8, 8, 3) and d.images.dtype == np.float32
    assert d.labels.shape == (2, 8, 8, 3) and d.labels.dtype == np.float32
    assert d.labels_full.shape == (2, 20, 20) and d.labels_full.dtype == np.uint8
    assert d.superpixels is None and d.superpixel_labels is None
    np.testing.assert_array_equal(d.labels.sum(-1), 1)
    np.testing.assert_array_equal(d.labels_full[0], truth["Ann_Bee_0001"][1])
    np.testing.assert_array_equal(d.labels_full[1], truth["Carl_Dee_Eff_0001"][1])
    # One-hot channels in CLASS_NAMES order: top rows hair, bottom rows background.
    assert CLASS_NAMES == ("hair", "face", "background")
    np.testing.assert_array_equal(d.labels[:, 0, :, 0], 1)
    np.testing.assert_array_equal(d.labels[:, -1, :, 2], 1)
    assert d.labels[:, 3:5, 3:5, 1].all()
    np.testing.assert_allclose(d.images[1, ..., 0], 20 / 255, atol=0.03)
    assert len(load_lfw_parts(lfw, 8, "test")) == 1
    assert load_lfw_parts(lfw, 8, "validation").names == ("Ann_Bee_0002",)
    assert len(load_lfw_parts(lfw, 8, split="all")) == 4
    with pytest.raises(ValueError):
        load_lfw_parts(lfw, 8)


def test_lfw_errors(tmp_path):
    lfw, truth, _ = _lfw_tree(tmp_path, archive=False)
    gt = lfw / "parts_lfw_funneled_gt_images"
    rgb = truth["Gus_Ho_0003"][0].copy()
    rgb[5, 6] = (0, 0, 0)
    (gt / "Gus_Ho_0003.ppm").write_bytes(_ppm_bytes(rgb))
    with pytest.raises(DataError, match=r"Gus_Ho_0003\.ppm.*black/ambiguous.*row 5, column 6"):
        load_lfw_parts(lfw, 8, "test")
    (gt / "Gus_Ho_0003.ppm").unlink()
    with pytest.raises(DataError, match=r"Gus_Ho_0003\.ppm.*vis-www\.cs\.umass\.edu/lfw/part_labels"):
        load_lfw_parts(lfw, 8, "test")
    (lfw / "lfw_funneled" / "Ann_Bee" / "Ann_Bee_0002.jpg").unlink()
    with pytest.raises(DataError, match=r"Ann_Bee_0002\.jpg.*lfw-funneled"):
        load_lfw_parts(lfw, 8, "validation")
    for p in gt.iterdir():
        p.unlink()
    gt.rmdir()
    with pytest.raises(DataError, match=r"parts_lfw_funneled_gt_images\.tgz.*part_labels"):
        load_lfw_parts(lfw, 8, "train")
    (lfw / "parts_lfw_funneled_gt_images.tgz").write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 20)
    with pytest.raises(DataError, match=r"parts_lfw_funneled_gt_images\.tgz.*corrupt"):
        load_lfw_parts(lfw, 8, "train")
    (lfw / "parts_lfw_funneled_gt_images.tgz").unlink()
    (lfw / "parts_test.txt").write_text("Gus_Ho three\n")
    with pytest.raises(DataError, match=r"parts_test\.txt:1"):
        load_lfw_parts(lfw, 8, "test")
    with pytest.raises(DataError, match="vis-www"):
        load_lfw_parts(tmp_path / "nothing", 8, "test")


def test_read_split_list(tmp_path):
    p = tmp_path / "parts_x.txt"
    p.write_text("Inga_Hall 1\n\nTed_Turner 12\r\nA_B_C 123\n")
    assert read_split_list(p) == ["Inga_Hall_0001", "Ted_Turner_0012", "A_B_C_0123"]


def test_ppm_to_class_ids():
    rgb = np.array([[[250, 10, 10], [10, 240, 30], [0, 0, 255], [128, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(ppm_to_class_ids(rgb), [[0, 1, 2, 0]])
    with pytest.raises(DataError, match="x.ppm"):
        ppm_to_class_ids(np.array([[[127, 127, 127]]], np.uint8), name="x.ppm")


@pytest.mark.parametrize("archive", [False, True])
def test_load_lfw_parts_superpixels(tmp_path, archive):
    lfw, truth, sp_truth = _lfw_tree(tmp_path, superpixels=True)
    if archive:  # the .tgz files as distributed instead of the folders
        for name in ("parts_lfw_funneled_superpixels_mat", "parts_lfw_funneled_gt"):
            with tarfile.open(lfw / f"{name}.tgz", "w:gz") as tar:
                tar.add(lfw / name, arcname=name)
            shutil.rmtree(lfw / name)
    d = load_lfw_parts(lfw, 8, "train")
    assert d.superpixels.shape == (2, 20, 20) and d.superpixels.dtype == np.int32
    for i, name in enumerate(d.names):
        np.testing.assert_array_equal(d.superpixels[i], sp_truth[name][0])
        np.testing.assert_array_equal(d.superpixel_labels[i], sp_truth[name][1])
    assert load_lfw_parts(lfw, 8, "train", superpixels=False).superpixels is None
    # Perfect predictions score 1 against superpixel labels derived from them.
    derived = superpixel_labels_from_pixels(d.superpixels, d.labels_full)
    assert superpixel_accuracy(d.labels_full, d.superpixels, derived) == 1.0
    if not archive:
        # A missing superpixel label file is an error naming it.
        (lfw / "parts_lfw_funneled_gt" / "Ann_Bee" / "Ann_Bee_0001.dat").unlink()
        with pytest.raises(DataError, match=r"Ann_Bee_0001\.dat"):
            load_lfw_parts(lfw, 8, "train")


def test_superpixel_parsers_example_format(tmp_path):
    # Same format as superpixel_format_example/IngaHall_{SP,GT}.dat, smaller.
    sp = np.array([[0, 0, 1, 1, 1], [0, 2, 2, 1, 1], [3, 3, 2, 2, 4]])
    _write_sp(tmp_path / "X_SP.dat", sp)
    assert (tmp_path / "X_SP.dat").read_bytes().startswith(b"0 0 1 1 1 \r\n0 2 2")
    m = read_superpixel_map(tmp_path / "X_SP.dat")
    assert m.dtype == np.int32
    np.testing.assert_array_equal(m, sp)
    _write_gt(tmp_path / "X_GT.dat", np.array([0, 0, 1, 2, 2]))
    assert (tmp_path / "X_GT.dat").read_bytes() == b"5\r\n0\r\n0\r\n1\r\n2\r\n2\r\n"
    np.testing.assert_array_equal(read_superpixel_labels(tmp_path / "X_GT.dat"), [0, 0, 1, 2, 2])
    # LF line ends too.
    (tmp_path / "lf.dat").write_text("3\n2\n1\n0\n")
    np.testing.assert_array_equal(read_superpixel_labels(tmp_path / "lf.dat"), [2, 1, 0])
    # Errors name the file.
    (tmp_path / "ragged.dat").write_text("0 1 2\n0 1\n")
    with pytest.raises(DataError, match="ragged.dat"):
        read_superpixel_map(tmp_path / "ragged.dat")
    (tmp_path / "count.dat").write_text("4\n0\n1\n")
    with pytest.raises(DataError, match="count.dat.*4 superpixels but 2"):
        read_superpixel_labels(tmp_path / "count.dat")
    (tmp_path / "range.dat").write_text("2\n0\n3\n")
    with pytest.raises(DataError, match="range.dat"):
        read_superpixel_labels(tmp_path / "range.dat")


def _brute_superpixel_accuracy(pred, sp, labels, c=3):
    correct = total = 0
    for n in range(pred.shape[0]):
        for s in range(int(sp[n].max()) + 1):
            inside = pred[n][sp[n] == s]
            if inside.size == 0:
                continue
            counts = [int(np.sum(inside == k)) for k in range(c)]
            vote = counts.index(max(counts))  # ties -> lowest class
            correct += vote == labels[n][s]
            total += 1
    return correct / total


def test_superpixel_accuracy_matches_brute_force():
    rs = np.random.RandomState(0)
    n, h, w = 4, 12, 10
    sp = np.stack([rs.randint(0, k, (h, w)) for k in (5, 9, 13, 20)])
    sp[1][sp[1] == 3] = 4  # an id that never occurs
    pred = rs.randint(0, 3, (n, h, w))
    labels = [rs.randint(0, 3, int(m.max()) + 1) for m in sp]
    got = superpixel_accuracy(pred, sp, labels)
    assert got == pytest.approx(_brute_superpixel_accuracy(pred, sp, labels))
    # Smooth predictions: majority vote within blocky superpixels.
    blocks = (np.arange(h)[:, None] // 4) * 3 + np.arange(w)[None, :] // 4
    sp2 = np.stack([blocks] * 2)
    truth = [np.arange(9) % 3, (np.arange(9) + 1) % 3]
    pred2 = np.stack([t[blocks] for t in truth])
    pred2[0, 0, 0] = (pred2[0, 0, 0] + 1) % 3  # one noisy pixel does not change the vote
    assert superpixel_accuracy(pred2, sp2, truth) == 1.0
    assert superpixel_accuracy(pred2, sp2, truth[::-1]) == pytest.approx(
        _brute_superpixel_accuracy(pred2, sp2, truth[::-1])
    )
    derived = superpixel_labels_from_pixels(sp2, pred2)
    for a, b in zip(derived, truth):
        np.testing.assert_array_equal(a, b)


def test_pixel_accuracy_and_upsampling():
    labels = np.zeros((2, 4, 4), np.uint8)
    pred = labels.copy()
    pred[0, 0, :] = 1
    assert pixel_accuracy(pred, labels) == pytest.approx(1 - 4 / 32)
    with pytest.raises(ValueError):
        pixel_accuracy(pred[:, :2], labels)
    scores = np.zeros((1, 2, 2, 3), np.float32)
    scores[0, 0, :, 0] = 1
    scores[0, 1, :, 2] = 1
    maps = class_maps_from_scores(scores, (8, 8))
    assert maps.shape == (1, 8, 8) and maps.dtype == np.uint8
    assert (maps[0, :3] == 0).all() and (maps[0, 5:] == 2).all()


def test_decode_image_corrupt(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_bytes(b"garbage")
    with pytest.raises(DataError, match="x.jpg"):
        decode_image(p)


# ---------------------------------------------------------------------------
# Real data (skipped when absent).

_HORSES = DATA_DIR / "weizmann_horse_db"
_LFW = DATA_DIR / "lfw_parts"


@pytest.mark.skipif(not (_HORSES / "rgb").is_dir(), reason=f"no real horse data in {DATA_DIR}")
def test_real_horses():
    data = load_horses(DATA_DIR)
    assert data.images.shape == (328, 32, 32, 3) and data.labels.shape == (328, 32, 32, 1)
    assert data.names[0] == "horse001" and data.names[-1] == "horse328"
    split = horse_split(len(data))
    assert [len(split[k]) for k in ("train", "validation", "test")] == [200, 28, 100]
    fg = data.labels.mean()
    assert 0.15 < fg < 0.4, fg  # horses cover about a quarter of the frame
    assert set(np.unique(data.labels)) == {0.0, 1.0}
    assert 0.2 < data.images.mean() < 0.7


@pytest.mark.skipif(not (_LFW / "parts_test.txt").is_file(), reason=f"no real LFW parts data in {DATA_DIR}")
def test_real_lfw_test_split():
    d = load_lfw_parts(DATA_DIR, 32, "test")
    assert len(d) == 927
    assert d.images.shape == (927, 32, 32, 3) and d.labels.shape == (927, 32, 32, 3)
    assert d.labels_full.shape == (927, 250, 250)
    np.testing.assert_array_equal(d.labels.sum(-1), 1)
    freq = np.bincount(d.labels_full.ravel(), minlength=3) / d.labels_full.size
    hair, face, background = freq
    assert background > face > hair > 0.03, freq
    assert 0.5 < background < 0.85 and 0.1 < face < 0.35, freq
    # The 32x32 one-hot labels keep the class balance.
    np.testing.assert_allclose(d.labels.mean(axis=(0, 1, 2)), freq, atol=0.01)
    # Faces are centred by funnelling: the centre pixel is face in most images.
    assert np.mean(d.labels_full[:, 125, 125] == 1) > 0.9


_SP_EXAMPLE = _LFW / "superpixel_format_example"


@pytest.mark.skipif(not (_SP_EXAMPLE / "IngaHall_SP.dat").is_file(), reason="no superpixel example files")
def test_real_superpixel_example():
    sp = read_superpixel_map(_SP_EXAMPLE / "IngaHall_SP.dat")
    labels = read_superpixel_labels(_SP_EXAMPLE / "IngaHall_GT.dat")
    assert sp.shape == (250, 250)
    assert sp.min() == 0 and sp.max() == 236 and len(np.unique(sp)) == 237  # 0-based, contiguous
    assert labels.shape == (237,) and set(np.unique(labels)) == {0, 1, 2}
    # The map belongs to Inga_Hall_0001 and label 1 is the face.
    tgz = _LFW / "parts_lfw_funneled_gt_images.tgz"
    if tgz.is_file():
        with tarfile.open(tgz) as tar:
            member = next(m for m in tar if m.name.endswith("/Inga_Hall_0001.ppm"))
            ids = ppm_to_class_ids(read_ppm(tar.extractfile(member).read()))
        votes = superpixel_labels_from_pixels(sp[None], ids[None])[0]
        purity = np.mean(votes[sp] == ids)
        assert purity > 0.95, purity
        assert np.mean(votes[labels == 1] == 1) > 0.9
        assert np.mean(votes[labels == 2] == 2) > 0.9
