"""Shared fixtures: tiny synthetic data, made by the tests, never read from ../shared."""

import contextlib
import io
import os
import subprocess
import sys

# Quiet TF's C++ start-up logs in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


def correlated_multilabel(n=600, num_features=20, num_labels=8, seed=0):
    """Labels come in correlated groups driven by a few latent factors visible in x.

    Each of num_labels // 2 latent bits switches on a pair of labels together, so an
    energy with label interactions can exploit the correlation.
    """
    rng = np.random.RandomState(seed)
    groups = num_labels // 2
    latent = rng.rand(n, groups) < 0.35
    # Ensure at least one active group per example, as in MULAN data.
    latent[np.arange(n), rng.randint(groups, size=n)] |= ~latent.any(axis=1)
    labels = np.repeat(latent, 2, axis=1).astype(np.float32)
    mixing = rng.randn(groups, num_features)
    features = latent.astype(np.float32) @ mixing + 0.8 * rng.randn(n, num_features)
    return features.astype(np.float32), labels


def write_arff(path, features, labels, labels_first=False, sparse=True, relation="tiny"):
    """A MULAN ARFF with numeric features and {0,1} labels, plus its label XML."""
    n, f = features.shape
    l = labels.shape[1]
    feat_attrs = [f"@attribute f{j} numeric" for j in range(f)]
    label_attrs = [f"@attribute label{j} {{0,1}}" for j in range(l)]
    attrs = label_attrs + feat_attrs if labels_first else feat_attrs + label_attrs
    rows = []
    for i in range(n):
        values = (list(labels[i].astype(int)) + list(features[i]) if labels_first
                  else list(features[i]) + list(labels[i].astype(int)))
        if sparse:
            rows.append("{" + ", ".join(f"{j} {v:g}" for j, v in enumerate(values) if v != 0) + "}")
        else:
            rows.append(",".join(f"{v:g}" for v in values))
    path.write_text(f"@relation {relation}\n" + "\n".join(attrs) + "\n@data\n" + "\n".join(rows) + "\n")
    xml = path.with_suffix(".xml")
    xml.write_text('<?xml version="1.0" encoding="utf-8"?>\n<labels xmlns="http://mulan.sourceforge.net/labels">\n'
                   + "\n".join(f'<label name="label{j}"></label>' for j in range(l)) + "\n</labels>\n")
    return path, xml


def run_concurrently(commands, timeout=600, **popen_args):
    """subprocess.run for several commands at once: each result a CompletedProcess, in order.
    A test process spends most of its seconds importing TensorFlow and tracing, one core each,
    so on CI's two cores two launcher processes take about as long as one."""
    started = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_args)
               for command in commands]
    finished = []
    try:
        for command, process in zip(commands, started):
            out, err = process.communicate(timeout=timeout)
            finished.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
    return finished


def launch_in_process(*args, cwd=None):
    """`python -m tfsp.launch *args` run by tfsp.launch.main in this process: a CompletedProcess
    with the status and what the launcher printed. It skips an interpreter start and a TensorFlow
    import (seconds each); tests of what only a fresh process shows (start-up output, a kill,
    devices, workers) launch one instead."""
    from absl import flags

    from tfsp import launch

    out, err = io.StringIO(), io.StringIO()
    argv, previous_cwd = sys.argv, os.getcwd()
    flags.FLAGS(["tfsp.launch", *args])
    try:
        sys.argv = [launch.__file__, *args]  # as `python -m` sets it: the record's command
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = launch.main(["tfsp.launch"])
    finally:
        sys.argv = argv
        os.chdir(previous_cwd)
        flags.FLAGS.unparse_flags()
    return subprocess.CompletedProcess(["tfsp.launch", *args], status, out.getvalue(), err.getvalue())


def write_tiny_mulan(folder):
    """(arff, xml) of the tiny MULAN dataset the launcher tests train on, written to folder."""
    features, labels = correlated_multilabel(n=300, num_features=12, num_labels=6)
    return write_arff(folder / "tiny.arff", features, labels)


@pytest.fixture
def tiny_mulan(tmp_path):
    return write_tiny_mulan(tmp_path)
