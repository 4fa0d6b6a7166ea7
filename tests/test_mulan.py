"""Tests for tfsp.data.mulan on tiny fixtures (plus one optional real-Bibtex check)."""

from __future__ import annotations

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
