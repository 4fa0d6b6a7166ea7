"""Tests for tfsp.data.mulan on tiny fixtures (plus one optional real-Bibtex check)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from tfsp.data.errors import DataError
from tfsp.data.mulan import (
    MULAN_URL,
    MulanData,
    carve_validation,
    find_mulan_files,
    load_mulan,
    seeded_split,
)

NS = "http://mulan.sourceforge.net/labels"


def _xml(*names: str) -> str:
    body = "\n".join(f'<label name="{n}"></label>' for n in names)
    return f'<?xml version="1.0" encoding="utf-8"?>\n<labels xmlns="{NS}">\n{body}\n</labels>\n'


def _write(tmp_path: Path, arff_text: str, xml_text: str, name: str = "toy") -> tuple[Path, Path]:
    a, x = tmp_path / f"{name}.arff", tmp_path / f"{name}.xml"
    a.write_text(arff_text)
    x.write_text(xml_text)
    return a, x


SPARSE_LABELS_LAST = """\
% a comment
@relation toy

@attribute f0 {0,1}
@attribute f1 {0,1}
@attribute f2 {0,1}
@attribute L_a {0,1}
@attribute L_b {0,1}

@data
{0 1,3 1}
{1 1,2 1,4 1}
{}
{0 1,1 1,2 1,3 1,4 1}
{}
"""


def test_sparse_labels_last(tmp_path):
    d = load_mulan(*_write(tmp_path, SPARSE_LABELS_LAST, _xml("L_a", "L_b")))
    assert isinstance(d, MulanData)
    assert d.features.dtype == np.float32 and d.labels.dtype == np.float32
    assert d.feature_names == ("f0", "f1", "f2")
    assert d.label_names == ("L_a", "L_b")
    # Trailing empty sparse rows are kept.
    np.testing.assert_array_equal(
        d.features, [[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(d.labels, [[1, 0], [0, 1], [0, 0], [1, 1], [0, 0]])
    assert d.source.endswith("toy.arff")


def test_label_order_follows_xml(tmp_path):
    d = load_mulan(*_write(tmp_path, SPARSE_LABELS_LAST, _xml("L_b", "L_a")))
    assert d.label_names == ("L_b", "L_a")
    np.testing.assert_array_equal(d.labels[:2], [[0, 1], [1, 0]])


def test_dense_labels_first(tmp_path):
    text = """@relation toy
@attribute y1 {0,1}
@attribute y2 {0,1}
@attribute x1 {0,1}
@attribute x2 {0,1}
@data
1,0,0,1
0,1,1,1
0,0,0,0
"""
    d = load_mulan(*_write(tmp_path, text, _xml("y1", "y2")))
    assert d.feature_names == ("x1", "x2")
    np.testing.assert_array_equal(d.labels, [[1, 0], [0, 1], [0, 0]])
    np.testing.assert_array_equal(d.features, [[0, 1], [1, 1], [0, 0]])


def test_labels_interleaved_with_numeric_features(tmp_path):
    text = """@relation toy
@attribute a NUMERIC
@attribute y1 {0,1}
@attribute b REAL
@attribute y2 NUMERIC
@attribute c INTEGER
@data
0.5,1,-2.25,0,3
1e3,0,?,1,-1
"""
    d = load_mulan(*_write(tmp_path, text, _xml("y1", "y2")))
    assert d.feature_names == ("a", "b", "c")
    np.testing.assert_array_equal(d.labels, [[1, 0], [0, 1]])
    np.testing.assert_array_equal(d.features[0], [0.5, -2.25, 3])
    assert d.features[1, 0] == 1000 and np.isnan(d.features[1, 1]) and d.features[1, 2] == -1


def test_sparse_numeric_features(tmp_path):
    text = """@relation toy
@attribute a NUMERIC
@attribute b NUMERIC
@attribute y {0,1}
@data
{1 2.5}
{0 -1,2 1}
"""
    d = load_mulan(*_write(tmp_path, text, _xml("y")))
    np.testing.assert_array_equal(d.features, [[0, 2.5], [-1, 0]])
    np.testing.assert_array_equal(d.labels, [[0], [1]])


def test_nested_label_hierarchy_xml(tmp_path):
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="{NS}">
  <label name="top">
    <label name="child1"></label>
    <label name="child2"><label name="grandchild"/></label>
  </label>
  <labels><label name="other"/></labels>
</labels>
"""
    text = """@relation toy
@attribute x NUMERIC
@attribute other {0,1}
@attribute grandchild {0,1}
@attribute child2 {0,1}
@attribute child1 {0,1}
@attribute top {0,1}
@data
1,1,0,0,1,1
"""
    d = load_mulan(*_write(tmp_path, text, xml))
    assert d.label_names == ("top", "child1", "child2", "grandchild", "other")
    np.testing.assert_array_equal(d.labels, [[1, 1, 0, 0, 1]])
    assert d.feature_names == ("x",)


def test_find_mulan_files_layouts(tmp_path):
    nested = tmp_path / "mulan" / "toy"
    nested.mkdir(parents=True)
    a, x = _write(nested, SPARSE_LABELS_LAST, _xml("L_a", "L_b"))
    # Root of a data folder, the dataset folder itself, and explicit paths.
    assert find_mulan_files(tmp_path, "toy") == (a, x)
    assert find_mulan_files(nested, "toy") == (a, x)
    assert find_mulan_files(None, "toy", arff_path=a, xml_path=x) == (a, x)
    assert find_mulan_files(tmp_path, "toy", arff_path=a) == (a, x)
    # data_dir/<name> layout.
    flat = tmp_path / "other" / "toy"
    flat.mkdir(parents=True)
    b, y = _write(flat, SPARSE_LABELS_LAST, _xml("L_a", "L_b"))
    assert find_mulan_files(tmp_path / "other", "toy") == (b, y)


def test_find_mulan_files_error_lists_tried_paths(tmp_path):
    (tmp_path / "lonely.arff").write_text("x")  # the XML is missing: not a pair
    with pytest.raises(DataError) as e:
        find_mulan_files(tmp_path, "lonely")
    msg = str(e.value)
    for p in (tmp_path / "lonely.arff", tmp_path / "lonely.xml",
              tmp_path / "mulan" / "lonely" / "lonely.arff",
              tmp_path / "lonely" / "lonely.xml"):
        assert str(p) in msg
    assert "lonely.arff" in msg and "lonely.xml" in msg and MULAN_URL in msg


def test_missing_file_error(tmp_path):
    _, x = _write(tmp_path, SPARSE_LABELS_LAST, _xml("L_a"))
    missing = tmp_path / "bibtex.arff"
    with pytest.raises(DataError) as e:
        load_mulan(missing, x)
    msg = str(e.value)
    assert str(missing) in msg and MULAN_URL in msg
    assert "bibtex.arff" in msg and "bibtex.xml" in msg
    with pytest.raises(DataError, match="toy_missing.xml"):
        load_mulan(tmp_path / "toy.arff", tmp_path / "toy_missing.xml")


@pytest.mark.parametrize(
    "bad_line, expected_line",
    [
        ("{0 1,3 7}", 16),   # nominal value outside {0,1} in a sparse row
        ("{0 1,3 1", 16),    # unbalanced brace
    ],
)
def test_malformed_arff_reports_file_and_physical_line(tmp_path, bad_line, expected_line):
    # Leading blank lines, comments and blank lines inside @data all count.
    text = "\n\n" + SPARSE_LABELS_LAST.replace("{1 1,2 1,4 1}", "\n% c\n" + bad_line)
    a, x = _write(tmp_path, text, _xml("L_a", "L_b"))
    lines = a.read_text().split("\n")
    assert lines[expected_line - 1] == bad_line  # the fixture is what we think
    with pytest.raises(DataError) as e:
        load_mulan(a, x)
    assert str(a) in str(e.value)
    assert f"line {expected_line}" in str(e.value)


def test_arff_without_examples_fails_at_load(tmp_path):
    header = SPARSE_LABELS_LAST.split("@data")[0] + "@data\n% no rows\n\n"
    a, x = _write(tmp_path, header, _xml("L_a", "L_b"))
    with pytest.raises(DataError, match=rf"{a}.*no examples.*data rows"):
        load_mulan(a, x)
    a.write_text("")
    with pytest.raises(DataError, match=rf"{a} is empty.*no examples \(data rows\)"):
        load_mulan(a, x)


def test_gzip_files_read_in_memory(tmp_path):
    import gzip

    a, x = _write(tmp_path, SPARSE_LABELS_LAST, _xml("L_a", "L_b"))
    plain = load_mulan(a, x)
    for path in (a, x):
        Path(f"{path}.gz").write_bytes(gzip.compress(path.read_bytes()))
    packed = load_mulan(f"{a}.gz", f"{x}.gz")
    np.testing.assert_array_equal(packed.features, plain.features)
    np.testing.assert_array_equal(packed.labels, plain.labels)
    Path(f"{a}.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"toy\.arff\.gz: not a readable gzip file"):
        load_mulan(f"{a}.gz", x)


def test_malformed_dense_arff_line(tmp_path):
    text = "@relation t\n@attribute x NUMERIC\n@attribute y {0,1}\n\n@data\n1,0\n\n2,1,5\n"
    a, x = _write(tmp_path, text, _xml("y"))
    with pytest.raises(DataError, match=r"toy\.arff, line 8"):
        load_mulan(a, x)


def test_malformed_xml(tmp_path):
    a, x = _write(tmp_path, SPARSE_LABELS_LAST, "<labels><label name='L_a'></labels>")
    with pytest.raises(DataError, match="toy.xml"):
        load_mulan(a, x)


def test_xml_label_missing_from_arff(tmp_path):
    a, x = _write(tmp_path, SPARSE_LABELS_LAST, _xml("L_a", "L_nope"))
    with pytest.raises(DataError) as e:
        load_mulan(a, x)
    msg = str(e.value)
    assert "L_nope" in msg and str(a) in msg and str(x) in msg


def test_non_binary_nominal_label(tmp_path):
    text = "@relation t\n@attribute x NUMERIC\n@attribute y {a,b}\n@data\n1,a\n"
    with pytest.raises(DataError, match=r"'y'.*\{a,b\}"):
        load_mulan(*_write(tmp_path, text, _xml("y")))


def test_numeric_label_not_01(tmp_path):
    text = "@relation t\n@attribute x NUMERIC\n@attribute y NUMERIC\n@data\n1,0\n2,0.5\n"
    with pytest.raises(DataError, match=r"'y'.*not 0/1.*row 1"):
        load_mulan(*_write(tmp_path, text, _xml("y")))


def test_seeded_split_matches_numpy():
    train, test = seeded_split(100, 70, seed=3)
    perm = np.random.RandomState(3).permutation(100)
    np.testing.assert_array_equal(train, perm[:70])
    np.testing.assert_array_equal(test, perm[70:])
    assert len(set(train) & set(test)) == 0
    assert sorted(np.concatenate([train, test])) == list(range(100))
    train0, _ = seeded_split(7395, 4880)
    np.testing.assert_array_equal(train0, np.random.RandomState(0).permutation(7395)[:4880])


def test_carve_validation():
    train, _ = seeded_split(100, 70, seed=0)
    a_tr, a_val = carve_validation(train, 0.2, seed=1)
    b_tr, b_val = carve_validation(train, 0.2, seed=1)
    np.testing.assert_array_equal(a_tr, b_tr)
    np.testing.assert_array_equal(a_val, b_val)
    assert len(a_val) == 14 and len(a_tr) == 56
    assert not set(a_tr) & set(a_val)
    assert set(a_tr) | set(a_val) == set(train)
    c_tr, c_val = carve_validation(train, 0.0, seed=1)
    np.testing.assert_array_equal(c_tr, train)
    assert c_val.size == 0


# ---------------------------------------------------------------- task pipelines


def _mulan_config(arff, xml, **fields):
    from tfsp.config import DataConfig

    return DataConfig(loader="mulan", arff=str(arff), xml=str(xml), batch_size=4, eval_batch_size=8, **fields)


def test_empty_splits_are_errors_naming_the_split_and_setting(tiny_mulan):
    from tfsp.datasets import build_task_data

    arff, xml = tiny_mulan  # 300 rows
    with pytest.raises(DataError, match=r"tiny\.arff: the test split has no examples.*data\.n_train=N with N < 300"):
        build_task_data(_mulan_config(arff, xml, n_train=300))
    with pytest.raises(DataError, match=r"data\.n_train=400 but the file has 300 examples"):
        build_task_data(_mulan_config(arff, xml, n_train=400))
    with pytest.raises(DataError, match=r"the validation split has no examples.*data\.validation_fraction"):
        build_task_data(_mulan_config(arff, xml, n_train=5, validation_fraction=0.05))
    data = build_task_data(_mulan_config(arff, xml, n_train=5, validation_fraction=0.0))
    assert data.validation is None and data.sizes == {"train": 5, "validation": 0, "test": 295}


def test_validation_seed_recarves_validation_and_keeps_the_test_rows(tiny_mulan):
    from tfsp.config import ConfigError, DataConfig
    from tfsp.datasets import build_task_data

    def rows(dataset):
        return np.concatenate([x.numpy() for x, _ in dataset])

    arff, xml = tiny_mulan
    default = build_task_data(_mulan_config(arff, xml, n_train=200, validation_fraction=0.2))
    same = build_task_data(_mulan_config(arff, xml, n_train=200, validation_fraction=0.2, validation_seed=0))
    other = build_task_data(_mulan_config(arff, xml, n_train=200, validation_fraction=0.2, validation_seed=3))
    np.testing.assert_array_equal(rows(default.validation), rows(same.validation))  # -1 means split_seed 0
    np.testing.assert_array_equal(rows(default.test), rows(other.test))
    assert other.sizes == default.sizes
    assert not np.array_equal(rows(default.validation), rows(other.validation))
    assert "seed 3" in other.split
    with pytest.raises(ConfigError, match="data.validation_seed re-carves .* MULAN"):
        build_task_data(DataConfig(loader="horses", validation_seed=1))


def test_pipelines_without_a_batch_are_errors_not_hangs():
    from tfsp.data import epochs
    from tfsp.data.images import segmentation_dataset

    with pytest.raises(DataError, match="the train split has no examples"):
        epochs.shuffled_batches((np.zeros((0, 3), np.float32),), 4, seed=0, first_epoch=0)
    images, labels = np.zeros((3, 8, 8, 3), np.float32), np.zeros((3, 8, 8, 1), np.float32)
    with pytest.raises(DataError, match=r"the train split has 3 examples, fewer than one batch of "
                                        r"data\.batch_size=4.*--set data\.batch_size=3"):
        segmentation_dataset(images, labels, 4, training=True, crop_size=None, seed=0, drop_remainder=True,
                             first_epoch=0, split="train")
    with pytest.raises(DataError, match="would never yield a batch"):
        epochs.epochs(lambda key: None, seed=0, num_batches=0, first_epoch=0)


def test_no_data_dir_names_the_flag_the_variable_the_files_and_the_source(monkeypatch):
    from tfsp.config import DataConfig
    from tfsp.datasets import build_task_data

    monkeypatch.delenv("TFSP_DATA_DIR", raising=False)
    with pytest.raises(DataError) as e:
        build_task_data(DataConfig(loader="mulan", name="bookmarks"))
    msg = str(e.value)
    for part in ("--data_dir", "TFSP_DATA_DIR", "bookmarks.arff", "bookmarks.xml", MULAN_URL):
        assert part in msg


# ------------------------------------------------------------------ shipped Bibtex


def test_shipped_bibtex_used_without_a_data_dir(monkeypatch):
    from tfsp.config import DataConfig
    from tfsp.datasets import build_task_data

    monkeypatch.delenv("TFSP_DATA_DIR", raising=False)
    start = time.perf_counter()
    data = build_task_data(DataConfig(loader="mulan", name="bibtex", n_train=4880, batch_size=20))
    elapsed = time.perf_counter() - start
    assert sum(data.sizes.values()) == 7395
    assert data.spec.input_shape == (1836,) and data.spec.output_shape == (159,)
    assert data.source == ("shipped copy third_party/bibtex/bibtex.arff.gz + "
                           "third_party/bibtex/bibtex.xml.gz (MULAN)")
    assert elapsed < 10.0, f"the shipped Bibtex took {elapsed:.1f} s to load"


def test_given_data_dir_wins_over_the_shipped_copy(tmp_path, monkeypatch):
    from conftest import correlated_multilabel, write_arff
    from tfsp.config import DataConfig
    from tfsp.datasets import build_task_data

    features, labels = correlated_multilabel(n=40, num_features=6, num_labels=4)
    arff, xml = write_arff(tmp_path / "bibtex.arff", features, labels)
    for env, data_dir in ((None, str(tmp_path)), (str(tmp_path), "")):
        if env:
            monkeypatch.setenv("TFSP_DATA_DIR", env)
        data = build_task_data(DataConfig(loader="mulan", name="bibtex", data_dir=data_dir, batch_size=4))
        assert data.source == f"{arff} + {xml}" and sum(data.sizes.values()) == 40


def test_shipped_copy_with_a_changed_byte_fails_its_checksum(tmp_path):
    import shutil

    from tfsp.data import mulan

    shipped = mulan.find_shipped("bibtex")
    assert shipped is not None, "the shipped Bibtex is missing from third_party/bibtex"
    copy = tmp_path / "bibtex"
    shutil.copytree(shipped, copy)
    target = copy / "bibtex.arff.gz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"{target}: SHA-256 checksum mismatch.*{copy / 'SHA256SUMS'}"):
        mulan.load_shipped_mulan("bibtex", copy)
    (copy / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="SHA256SUMS not found"):
        mulan.load_shipped_mulan("bibtex", copy)


_DATA_ROOT = Path(os.environ.get("TFSP_DATA_DIR", "/work/shared/data"))
_BIBTEX_DIR = (_DATA_ROOT / "mulan" / "bibtex"
               if (_DATA_ROOT / "mulan" / "bibtex" / "bibtex.arff").exists()
               else _DATA_ROOT)


@pytest.mark.skipif(not (_BIBTEX_DIR / "bibtex.arff").exists(),
                    reason="real Bibtex not available (set TFSP_DATA_DIR)")
def test_real_bibtex():
    start = time.perf_counter()
    d = load_mulan(*find_mulan_files(_DATA_ROOT, "bibtex"))
    elapsed = time.perf_counter() - start
    assert d.features.shape == (7395, 1836)
    assert d.labels.shape == (7395, 159)
    assert np.all((d.labels == 0) | (d.labels == 1))
    assert elapsed < 5.0, f"Bibtex took {elapsed:.1f} s to load"


def test_mulan_training_labels_carry_folds_and_ldrsp_trains_on_held_out_outputs(tiny_mulan, tmp_path):
    """heldout_folds on a multi-label task: the training labels get each example's fold as one
    more column (validation and test labels do not), and LDRSP's fold networks and held-out
    tuples train through the launcher."""
    from conftest import launch_in_process
    from tfsp.config import DataConfig
    from tfsp.datasets import build_task_data

    arff, xml = tiny_mulan
    data = build_task_data(DataConfig(loader="mulan", arff=str(arff), xml=str(xml), batch_size=20),
                           training_folds=3)
    _, labels = next(iter(data.train))
    assert labels.shape[-1] == 6 + 1 and set(np.unique(labels[:, -1])) <= {0, 1, 2}
    assert next(iter(data.validation))[1].shape[-1] == 6 and next(iter(data.test))[1].shape[-1] == 6
    proc = launch_in_process("--task=mlc", "--method=ldrsp", f"--arff={arff}", f"--xml={xml}",
                             f"--model_dir={tmp_path / 'run'}", f"--results_dir={tmp_path / 'results'}",
                             "--epochs=2", "--refine_steps=2", "--verbose=0", "--set", "heldout_folds=2",
                             "--set", "refine_from_heldout=0.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((tmp_path / "results" / "mlc-ldrsp.json").read_text())["history"]
    assert np.isfinite(history["d_heldout"]).all() and np.isfinite(history["g_fold_cross_entropy"]).all()
