"""SavedModel export for TF Serving: the method's test-time prediction, refinement included.

    python -m tfsp.launch --task=horses --method=ldrsp ... --export_dir=exports/horses-ldrsp
    python -m tfsp.launch --mode=export --task=horses --method=ldrsp --model_dir=DIR --export_dir=...

The export is generic over `StructuredModel`: its signature runs `model.infer` (the
method's start G(x) or zeros, then `tfsp.refine.refine`'s `tf.while_loop` with the
steps and η of `config.test_refine`, on the crop grid for segmentation), so any
method that implements `initial_output` / `value_of` exports without changes.

Signatures (named inputs and outputs, see `saved_model_cli show --dir DIR/1 --all`):

* ``serving_default``: ``inputs`` = the raw model input, float32 ``[batch, *input_shape]``
  (feature vectors for multi-label tasks; RGB images in [0, 1] for segmentation, e.g.
  ``[batch, 32, 32, 3]``). Standardization, if the task uses it, happens inside.
* ``serving_uint8`` (image tasks only): ``images`` = uint8 ``[batch, H, W, 3]`` in 0..255,
  divided by 255 inside, then as ``serving_default``. A second signature rather than a
  dtype switch, because a signature has one dtype per input and clients (TF Serving's REST
  API, saved_model_cli) pick signatures by name.

Inputs are checked in the graph: a wrong shape (or rank), a NaN or infinite value, or a float
image value outside [0, 1] fails with an InvalidArgumentError such as "tfsp serving: `inputs`
must be a float32 tensor of shape [batch, 1836] with finite values; got shape [5]"; a wrong
dtype is refused by the signature itself. An empty batch ([0, ...]) is served: every output
then has an empty batch.

Outputs: ``prediction`` (the refined relaxed output: label probabilities, or per-pixel
foreground / class probabilities), ``labels`` (binarized at the configured
prediction_threshold, 0.5 unless set, or one-hot arg-max per pixel, as the metrics score them), ``value`` (the value network's score of ``prediction``,
[batch]; absent for methods that do not refine, e.g. the feed-forward baseline),
``class_ids`` (multi-class segmentation: int32 arg-max per pixel) and
``prediction_inference_net`` (methods with an inference network that refine its output:
G(x) before refinement).

Versions: every export goes to ``DIR/<n>/`` with n the next free integer (1, 2, ...), as
TF Serving expects; it is written into a hidden temporary folder beside them and renamed,
so a crash never leaves a half-written version where TF Serving would load it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict

import tensorflow as tf
from absl import logging

from tfsp import oracles, results
from tfsp.methods.base import StructuredModel

SERVING_DEFAULT = "serving_default"
SERVING_UINT8 = "serving_uint8"


def _checked_input(x: tf.Tensor, spec: tf.TensorSpec, unit_range: bool = False) -> tf.Tensor:
    """x, once the graph has checked it is what the signature serves: [batch, *per-example
    shape] and, for float inputs, finite values (in [0, 1] with `unit_range`: float images).
    Otherwise the call fails with an InvalidArgumentError naming the expected input and what
    it got. A signature call (what TF Serving and `loaded.signatures[...]` run) passes tensors
    of any shape, even of another rank, through to the graph; the restored tf.function
    (`loaded.serve`) rejects them before running."""
    dims = spec.shape.as_list()[1:]
    expected = (f"tfsp serving: `{spec.name}` must be a {spec.dtype.name} tensor of shape "
                f"[batch, {', '.join(map(str, dims))}]")
    if spec.dtype.is_floating:
        expected += " with finite values" + (" in [0, 1]" if unit_range else "")
    # Matched as text: tf.rank(x) and the like are computed from the signature's static rank,
    # which the call does not enforce, so a rank-1 input would pass them.
    shape = tf.strings.reduce_join(tf.strings.as_string(tf.shape(x)), separator=", ")
    shape_check = tf.debugging.Assert(
        tf.strings.regex_full_match(shape, r"\d+" + "".join(f", {d}" for d in dims)),
        [tf.strings.join([expected, "; got shape [", shape, "]"])])
    checks = [shape_check]
    if spec.dtype.is_floating:
        valid = tf.math.is_finite(x)
        if unit_range:
            valid &= (x >= 0.0) & (x <= 1.0)
        with tf.control_dependencies([shape_check]):  # the axes below assume the checked rank
            valid_examples = tf.reduce_all(valid, axis=list(range(1, len(dims) + 1)))
        got = "a value outside [0, 1] or not finite" if unit_range else "a NaN or infinite value"
        hint = " (images in 0..255 go to the serving_uint8 signature, as uint8)" if unit_range else ""
        # The first invalid example; the appended "invalid" keeps argmin defined for an empty batch.
        first_bad = tf.argmin(tf.concat([tf.cast(valid_examples, tf.int32), [0]], 0))
        checks.append(tf.debugging.Assert(
            tf.reduce_all(valid_examples),
            [tf.strings.join([expected, f"; got {got} in example ", tf.strings.as_string(first_bad), hint])]))
    with tf.control_dependencies(checks):  # before any op that would fail less clearly
        return tf.identity(x)


class ServingModule(tf.Module):
    """Holds a trained StructuredModel and its serving functions (tracked for the SavedModel)."""

    def __init__(self, model: StructuredModel):
        super().__init__(name="tfsp_serving")
        # Track the model's variables, not the model: the SavedModel then holds the networks'
        # weights (and standardization statistics) but not the optimizers' slots.
        self.model_variables = list(model.variables)
        self._infer = lambda x: model.infer(x, training=False)  # a closure is not tracked
        self.spec = spec = model.spec
        self.input_spec = tf.TensorSpec([None, *spec.input_shape], tf.float32, name="inputs")
        self.serve = tf.function(self._serve, input_signature=[self.input_spec])
        self.is_image = len(spec.input_shape) == 3 and spec.input_shape[-1] == 3
        if self.is_image:
            self.uint8_spec = tf.TensorSpec([None, *spec.input_shape], tf.uint8, name="images")
            self.serve_uint8 = tf.function(self._serve_uint8, input_signature=[self.uint8_spec])

    def _outputs(self, inputs) -> Dict[str, tf.Tensor]:
        """The signature's outputs for checked float32 inputs [batch, *input_shape]. An empty
        batch gives outputs with an empty batch: inference then runs on one zero input (the
        crop grid's reshapes need an example) whose outputs are dropped."""
        spec = self.spec
        size = tf.shape(inputs)[0]
        runnable = tf.cond(size > 0, lambda: inputs, lambda: tf.zeros([1, *spec.input_shape]))
        outputs = self._infer(runnable)
        result = {"prediction": outputs["y"],
                  "labels": oracles.binarize(outputs["y"], spec.multiclass, spec.threshold)}
        if "value" in outputs:
            result["value"] = outputs["value"]
            if "y_inference_net" in outputs:
                result["prediction_inference_net"] = outputs["y_inference_net"]
        if spec.multiclass and len(spec.output_shape) > 1:
            result["class_ids"] = tf.argmax(outputs["y"], axis=-1, output_type=tf.int32)
        return {name: tf.identity(value[:size], name=name) for name, value in result.items()}

    def _serve(self, inputs):
        return self._outputs(_checked_input(inputs, self.input_spec, unit_range=self.is_image))

    def _serve_uint8(self, images):
        images = _checked_input(images, self.uint8_spec)
        return self._outputs(tf.cast(images, tf.float32) / 255.0)

    def signatures(self):
        signatures = {SERVING_DEFAULT: self.serve.get_concrete_function()}
        if self.is_image:
            signatures[SERVING_UINT8] = self.serve_uint8.get_concrete_function()
        return signatures


def next_version(export_dir) -> int:
    """1 + the largest integer-named version folder in export_dir (1 if none)."""
    export_dir = Path(export_dir)
    versions = [int(p.name) for p in export_dir.iterdir()
                if p.is_dir() and re.fullmatch(r"\d+", p.name)] if export_dir.is_dir() else []
    return max(versions, default=0) + 1


def export_saved_model(model: StructuredModel, export_dir) -> Path:
    """Writes a new version DIR/<n>/ atomically; returns its path."""
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    module = ServingModule(model)
    signatures = module.signatures()
    # A hidden name TF Serving ignores (it loads only integer-named folders).
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=export_dir))
    try:
        # mkdtemp's 0700 would keep a serving process of another user out of the version folder.
        os.chmod(tmp, results.default_mode(directory=True))
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        while True:
            target = export_dir / str(next_version(export_dir))
            try:
                os.rename(tmp, target)  # atomic; fails if another writer took this number first
                return target
            except OSError:
                if not target.exists():
                    raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_from_model_dir(config, model_dir, export_dir) -> Path:
    """Restores the weights a run left in model_dir (see experiment.restore) and exports them
    with the test-time settings its last test pass chose on validation (select_refine_steps,
    select_crop_mode, select_threshold; experiment.CHOSEN_TEST_SETTINGS_FILE), if any, except
    those `config` sets otherwise than the training configuration (the user's override wins)."""
    from tfsp import experiment

    _, model = experiment.restore(config, model_dir)
    # Serve what the last test pass of these weights tested, as the run's own export does.
    chosen = experiment.apply_chosen_test_settings(model, model_dir, config)
    if chosen:
        logging.info("exporting with the test settings chosen on validation: %s", chosen)
    return export_saved_model(model, export_dir)
