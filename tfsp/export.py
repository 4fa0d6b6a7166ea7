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

Outputs: ``prediction`` (the refined relaxed output: label probabilities, or per-pixel
foreground / class probabilities), ``labels`` (binarized at 0.5, or one-hot arg-max per
pixel, as the metrics score them), ``value`` (the value network's score of ``prediction``,
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

from tfsp import oracles
from tfsp.methods.base import StructuredModel

SERVING_DEFAULT = "serving_default"
SERVING_UINT8 = "serving_uint8"


def _check_shape(x: tf.Tensor, spec: tf.TensorSpec) -> tf.Tensor:
    """A wrong per-example shape fails with a message naming the expected shape. The
    restored tf.function rejects it before running; signatures (what TF Serving and
    `loaded.signatures[...]` call) accept any shape of the right rank, so check in the graph."""
    dims = spec.shape.as_list()[1:]
    check = tf.debugging.assert_equal(
        tf.shape(x)[1:], tf.constant(dims, tf.int32),
        message=f"input `{spec.name}` must be {spec.dtype.name} of shape [batch, {', '.join(map(str, dims))}]")
    with tf.control_dependencies([check]):  # before any op that would fail less clearly
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
        inputs = _check_shape(inputs, self.input_spec)
        spec = self.spec
        outputs = self._infer(inputs)
        result = {"prediction": tf.identity(outputs["y"], name="prediction"),
                  "labels": oracles.binarize(outputs["y"], spec.multiclass)}
        if "value" in outputs:
            result["value"] = outputs["value"]
            if "y_inference_net" in outputs:
                result["prediction_inference_net"] = outputs["y_inference_net"]
        if spec.multiclass and len(spec.output_shape) > 1:
            result["class_ids"] = tf.argmax(outputs["y"], axis=-1, output_type=tf.int32)
        return result

    def _serve(self, inputs):
        return self._outputs(inputs)

    def _serve_uint8(self, images):
        images = _check_shape(images, self.uint8_spec)
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
    """Restores the weights a run left in model_dir (see experiment.restore) and exports them."""
    from tfsp import experiment

    _, model = experiment.restore(config, model_dir)
    return export_saved_model(model, export_dir)
