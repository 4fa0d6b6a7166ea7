"""The common surface of every method: a `keras.Model` whose `train_step` holds the algorithm.

Subclasses implement `train_step` (the learning algorithm), `initial_output` (where a
prediction starts: G(x), zeros) and `value_of` (the value to ascend from there, if
any). This base class turns them into `infer` (refinement, on crops for
segmentation), `predict_step` and `test_step`, tracks every loss term and
metric with `keras.metrics.Mean` (so values aggregate correctly over batches
and replicas), and owns the input standardization and the refinement configs.
Replication: see tfsp.methods.replicas; tuples generated for training: tfsp.methods.tuples.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import ClassVar, Dict, Iterable, Optional

import keras
import tensorflow as tf

from tfsp import crops, oracles
from tfsp.config import ConfigError, OptimizerConfig
from tfsp.methods.keras_build import BuiltBeforeFit
from tfsp.methods.replicas import (GlobalBatch, _replica_context, assign_moving_average,
                                   per_example_mean, step_logs)
from tfsp.refine import RefineConfig, refine
from tfsp.spec import TaskSpec, metric_sums


class Standardize(keras.layers.Layer):
    """(x - mean) / std with the statistics stored as (non-trainable) weights.

    Keeping them as weights puts them in checkpoints and SavedModels, so a
    restored or served model standardizes exactly as the trained one did.
    """

    def __init__(self, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self._initial = (mean, std)

    def build(self, input_shape):
        dim = input_shape[-1]
        mean, std = self._initial
        self.mean = self.add_weight(shape=(dim,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(dim,), initializer="ones", trainable=False, name="std")
        if mean is not None:
            self.mean.assign(tf.reshape(tf.cast(mean, tf.float32), [dim]))
            self.std.assign(tf.reshape(tf.cast(std, tf.float32), [dim]))

    def call(self, x):
        return (x - self.mean) / self.std


class RatioMetric(keras.metrics.Metric):
    """Σ numerator / Σ denominator over everything seen (e.g. global IoU), in percent."""

    def __init__(self, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.numerator = self.add_variable(shape=(), initializer="zeros", name="numerator")
        self.denominator = self.add_variable(shape=(), initializer="zeros", name="denominator")

    def update_state(self, numerator, denominator):
        self.numerator.assign_add(tf.reduce_sum(numerator))
        self.denominator.assign_add(tf.reduce_sum(denominator))

    def result(self):
        return 100.0 * tf.math.divide_no_nan(self.numerator, self.denominator)


class StructuredModel(BuiltBeforeFit, keras.Model):
    """Base class of the methods; see the module docstring."""

    refines: ClassVar[bool] = False
    """Whether prediction refines on a value network (`value_of` is not None)."""
    optimizer_names: ClassVar[tuple] = ("optimizer",)
    """The attributes holding the method's optimizers, which `compile` takes by these names
    (the OptimizerConfig fields of its settings) and checkpoints hold under them."""

    def __init__(self, spec: TaskSpec, test_refine: RefineConfig = RefineConfig(),
                 seed: int = 0, crop_mode: str = "average", **kwargs):
        super().__init__(**kwargs)
        if crop_mode not in crops.CROP_MODES:
            raise ValueError(f"unknown crop mode {crop_mode!r}; valid: {crops.CROP_MODES}")
        self.spec = spec
        self.test_refine = self.on_task(test_refine)
        self.crop_mode = crop_mode
        self.seed = int(seed)
        self.standardize = (Standardize(spec.feature_mean, spec.feature_std, name="standardize")
                            if spec.feature_mean is not None else None)
        # A tf.random.Generator made in the strategy's scope gives each replica its own stream,
        # and its state is part of the model's checkpoints, so a resumed run draws what an
        # uninterrupted one would have drawn.
        self.sampling_rng = tf.random.Generator.from_seed(self.seed)
        self.train_trackers: Dict[str, keras.metrics.Mean] = {"loss": keras.metrics.Mean(name="loss")}
        self.eval_trackers: Dict[str, keras.metrics.Metric] = {}
        for prefix in self.prediction_kinds():
            for name in spec.metrics:
                full = prefix + name
                self.eval_trackers[full] = keras.metrics.Mean(name=full)
            for name in spec.ratio_metrics:
                full = prefix + name
                self.eval_trackers[full] = RatioMetric(name=full)

    # ----- what subclasses provide -------------------------------------------------------
    @classmethod
    def from_settings(cls, settings, parts, **common) -> "StructuredModel":
        """The method built from its registered settings (tfsp.methods.registry); `parts`
        (tfsp.build.MethodParts) makes its networks, `common` holds spec, seed, crop_mode, name."""
        raise NotImplementedError

    @classmethod
    def variant(cls, settings) -> str:
        """What tells runs of this method apart in results names and the README's rows beside
        the method's name (e.g. the implicit trainer's primary loss); "" for none."""
        return ""

    @classmethod
    def training_folds(cls, settings) -> int:
        """K > 0: the method trains networks on folds of the training examples held out from each
        other, so the training labels must carry each example's fold (one more last channel,
        tfsp.datasets.with_fold_channel); 0: plain labels."""
        return 0

    def training_callbacks(self, steps_per_epoch: int) -> list:
        """Keras callbacks the method's training needs (e.g. LDRSP's phase schedule)."""
        return []

    def prediction_kinds(self):
        """Metric-name prefixes of the predictions `infer` returns: "" for the final one,
        "inference_net_" for G(x) alone where there is a G."""
        return ("",)

    def initial_output(self, x, training=False):
        """(y0, extras): where prediction starts (G(x), zeros, ...) for standardized x, and
        extra outputs to report (e.g. {"y_inference_net": G(x)})."""
        raise NotImplementedError

    def on_task(self, config: RefineConfig) -> RefineConfig:
        """`config` refining on this task's feasible set (its projection)."""
        return dataclasses.replace(config, projection=self.spec.projection)

    def training_refinement(self, config: RefineConfig, name: str = "train_refine") -> RefineConfig:
        """on_task for a refinement that makes training tuples: those ascend D on the training
        crop as it is, so the test-time mirror and dropout options are refused there rather than
        ignored."""
        for field, off in RefineConfig.TEST_TIME_ONLY.items():
            value = getattr(config, field)
            if value != off:
                shown = str(value).lower() if isinstance(value, bool) else value
                raise ConfigError(f"{name}.{field}={shown}: {field} is a test-time option (test_refine.{field}); "
                                  "training refinements ascend D itself, on the training crop as it is")
        return self.on_task(config)

    def set_test_settings(self, refine: Optional[RefineConfig] = None,
                          crop_mode: Optional[str] = None, crop_grid: Optional[int] = None,
                          threshold: Optional[float] = None) -> None:
        """Changes how prediction refines (steps, step size, ...), combines crops, how many
        crops cover an image (crop_grid × crop_grid) and/or the threshold that binarizes
        outputs; the compiled test and predict steps, which baked in the old settings, are dropped."""
        if crop_mode is not None and crop_mode not in crops.CROP_MODES:
            raise ValueError(f"unknown crop mode {crop_mode!r}; valid: {crops.CROP_MODES}")
        self.test_refine = self.test_refine if refine is None else refine
        self.crop_mode = self.crop_mode if crop_mode is None else crop_mode
        if crop_grid is not None and crop_grid != self.spec.crop_grid:
            self.spec = dataclasses.replace(self.spec, crop_grid=int(crop_grid))
        if threshold is not None and threshold != self.spec.threshold:
            self.spec = dataclasses.replace(self.spec, threshold=float(threshold))
        self.test_function = self.predict_function = None

    @contextlib.contextmanager
    def test_settings(self, refine: Optional[RefineConfig] = None, crop_mode: Optional[str] = None,
                      crop_grid: Optional[int] = None, threshold: Optional[float] = None):
        """`set_test_settings` for the duration of a `with` block, restored afterwards
        (e.g. a step curve's longer refinement, the other crop mode's evaluation, periodic
        validation on fewer crops)."""
        saved = self.test_refine, self.crop_mode, self.spec.crop_grid, self.spec.threshold
        self.set_test_settings(refine, crop_mode, crop_grid, threshold)
        try:
            yield self
        finally:
            self.set_test_settings(*saved)

    def value_of(self, x, training=False):
        """The per-example value function y -> [B] to ascend at test time, with everything
        that depends on x alone computed here, once; None if the method does not refine.

        Methods with a value network `self.value_net` ascend the mean of its sigmoid scores;
        with test_refine.mirror, the mean of that value on (x, y) and on their mirror images;
        with test_refine.dropout_samples K, the mean over K dropout masks of each."""
        if not self.refines:
            return None
        net = self.prediction_value_net
        views = [(x, lambda y: y)]
        if self.test_refine.mirror:
            if x.shape.rank != 4:
                raise ValueError(f"test_refine.mirror needs image inputs [batch, height, width, channels]; "
                                 f"{self.spec.name} has inputs of shape {tuple(x.shape)}")
            views.append((tf.reverse(x, [2]), lambda y: tf.reverse(y, [2])))
        samples = self.test_refine.dropout_samples
        if samples and not getattr(net, "dropout", 0.0):
            raise ConfigError(f"test_refine.dropout_samples={samples} needs a value network with dropout; "
                              f"{type(net).__name__} has none (set value_net.dropout or dropout_samples=0)")
        fns = [(self.value_from(net.precompute(view, training=training or bool(samples)),
                                training=training or bool(samples), net=net), transform)
               for view, transform in views for _ in range(max(samples, 1))]
        if len(fns) == 1:
            return fns[0][0]
        return lambda y: tf.add_n([fn(transform(y)) for fn, transform in fns]) / len(fns)

    def value_from(self, context, training=False, net=None):
        """value_of for an x whose net.precompute(x) is `context`: the per-example mean of
        value_map (net: the value network, `value_net` unless given)."""
        value_map = self.value_map(context, training=training, net=net)
        return lambda y: per_example_mean(value_map(y))

    def value_map(self, context, training=False, net=None):
        """y -> D's sigmoid scores for precomputed x: one per example, or one per position
        for a patch discriminator (net: `value_net` unless given)."""
        net = net or self.value_net
        return lambda y: tf.sigmoid(net.score(context, y, training=training))

    # ----- a moving average of the value network for prediction ---------------------------------
    value_net_average = None
    """With `init_value_average`: the network prediction ascends, an exponential moving average
    of value_net's weights; None: prediction ascends value_net itself."""

    def init_value_average(self, momentum: float, network=None) -> None:
        """momentum in (0, 1): prediction (`value_of`) ascends `network`, a second network of
        value_net's architecture whose weights are an exponential moving average of value_net's,
        updated after each update of it (`update_value_average`), while training tuples keep
        coming from value_net itself, as a GAN's averaged generator serves sampling only. It is
        part of the model, so checkpoints, the best validation epoch and exports hold it.
        0: no average (network unused)."""
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"value_average must be in [0, 1), got {momentum}")
        if momentum and network is None:
            raise ValueError("value_average > 0 needs value_net_average, a second network of value_net's architecture")
        self.value_average_momentum = float(momentum)
        self.value_net_average = network if momentum else None

    @property
    def prediction_value_net(self):
        return self.value_net_average if self.value_net_average is not None else self.value_net

    def update_value_average(self, updates) -> None:
        """After value_net's update number `updates` (its optimizer's iterations, 1 after the first):
        the average moves towards it with decay min(momentum, (1 + n) / (10 + n)), n = updates − 1
        (tf.train.ExponentialMovingAverage's ramp), and is value_net itself after the first update,
        so early averages are not dominated by the initial weights."""
        if self.value_net_average is None:
            return
        momentum = self.value_average_momentum

        def decay():
            n = tf.cast(updates, tf.float32) - 1.0
            return tf.where(n > 0.0, tf.minimum(momentum, (1.0 + n) / (10.0 + n)), 0.0)

        assign_moving_average(self.value_net_average.weights, self.value_net.weights, decay)

    def generate_samples(self, x, y_true) -> Dict[str, tf.Tensor]:
        """{kind: y}: the outputs (other than y*) a training step scores with the value network,
        for standardized x; TensorBoard's sample summaries show D's value and the oracle of each."""
        return {}

    def optimizers(self) -> Dict[str, keras.optimizers.Optimizer]:
        """The method's optimizers by attribute name (`optimizer_names`)."""
        return {name: getattr(self, name) for name in self.optimizer_names}

    def optimizer_updates_at(self, optimizer_name: str, run_updates: int) -> int:
        """How many updates optimizer `optimizer_name` has applied after `run_updates` training
        steps: a learning-rate schedule counts its optimizer's own updates, while decay_epochs
        are epochs of the run. Equal unless the method trains its networks in phases (LDRSP)."""
        return run_updates

    def build_networks(self, x) -> None:
        """Creates every network's variables from a batch of raw x: those `infer` uses, and
        those only training uses (overridden, e.g. by InfNet's cost-augmented network)."""
        outputs = self.infer(x)
        if self.value_net_average is not None:  # infer built the average; training uses value_net
            x, y = self.prepare_inputs(x), outputs["y"]
            size = self.spec.crop_size
            if size:
                x, y = x[:, :size, :size], y[:, :size, :size]
            self.value_net((x, y))
            self.value_net_average.set_weights(self.value_net.get_weights())

    # ----- prediction --------------------------------------------------------------------------
    def _infer_whole(self, x, training, return_trajectory):
        y0, outputs = self.initial_output(x, training=training)
        value_fn = self.value_of(x, training=training)
        if value_fn is None:
            outputs["y"] = y0
            if return_trajectory:
                outputs["trajectory"] = y0[tf.newaxis]
            return outputs
        result = refine(value_fn, y0, self.test_refine, return_trajectory=return_trajectory)
        outputs.update(y=result.y, value=result.values)
        if return_trajectory:
            outputs["trajectory"] = result.trajectory
        return outputs

    def infer(self, x, training=False, return_trajectory=False) -> Dict[str, tf.Tensor]:
        """{"y": final relaxed prediction, "value", optional "y_inference_net" and "trajectory"}.

        Segmentation tasks with a crop size run on crops of x (see tfsp.crops): each crop
        refined alone and averaged, or the whole mask refined jointly.
        """
        x = self.prepare_inputs(x)
        spec = self.spec
        if not spec.crop_size or x.shape[1] == spec.crop_size:
            return self._infer_whole(x, training, return_trajectory)
        full = x.shape[1]
        offsets = crops.crop_offsets(full, spec.crop_size, spec.crop_grid)
        x_crops = crops.extract_crops(x, offsets, spec.crop_size)
        if self.crop_mode == "average":
            outputs = self._infer_whole(x_crops, training, return_trajectory)
            return self._average_outputs(outputs, offsets, full)
        # Joint: one mask for the whole image; each step averages the crops' gradients per pixel.
        y0_crops, extras = self.initial_output(x_crops, training=training)
        outputs = self._average_outputs(dict(extras, y=y0_crops), offsets, full)
        crop_value_fn = self.value_of(x_crops, training=training)
        if crop_value_fn is None:
            if return_trajectory:
                outputs["trajectory"] = outputs["y"][tf.newaxis]
            return outputs
        inverse_coverage = 1.0 / crops.coverage(full, offsets, spec.crop_size)
        k = len(offsets)

        def joint_value_fn(y):
            y_crops = crops.extract_crops(crops.mean_gradient_identity(y, inverse_coverage),
                                          offsets, spec.crop_size)
            return tf.reduce_sum(tf.reshape(crop_value_fn(y_crops), [-1, k]), axis=1)

        result = refine(joint_value_fn, outputs["y"], self.test_refine, return_trajectory=return_trajectory)
        outputs.update(y=result.y, value=result.values / k)
        if return_trajectory:
            outputs["trajectory"] = result.trajectory
        return outputs

    @staticmethod
    def _average_outputs(outputs, offsets, full):
        k = len(offsets)
        averaged = {}
        for name, value in outputs.items():
            if name == "value":
                averaged[name] = tf.reduce_mean(tf.reshape(value, [-1, k]), axis=1)
            elif name == "trajectory":
                shape = tf.shape(value)
                flat = tf.reshape(value, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))
                merged = crops.average_crops(flat, offsets, full)
                averaged[name] = tf.reshape(merged, tf.concat([[shape[0], shape[1] // k], tf.shape(merged)[1:]], 0))
            else:
                averaged[name] = crops.average_crops(value, offsets, full)
        return averaged

    # ----- shared machinery ------------------------------------------------------------------
    def prepare_inputs(self, x):
        x = tf.cast(x, tf.float32)
        return self.standardize(x) if self.standardize is not None else x

    @property
    def metrics(self):
        return [*self.train_trackers.values(), *self.eval_trackers.values()]

    def add_train_statistics(self, names: Iterable[str]) -> None:
        """Declares the loss terms and statistics `train_step` reports besides "loss"."""
        for name in names:
            self.train_trackers[name] = keras.metrics.Mean(name=name)

    def global_batch(self, x) -> GlobalBatch:
        return GlobalBatch(tf.shape(x)[0])

    def track(self, **shares) -> None:
        """Records this step's statistics, each given as this replica's share of its
        global-batch value (`GlobalBatch.mean`, or a loss built from shares); the shares
        are summed over the replicas, so every replica records the global value."""
        shares = {name: tf.cast(value, tf.float32) for name, value in shares.items()}
        context = _replica_context()
        if context is not None:
            shares = context.all_reduce(tf.distribute.ReduceOp.SUM, shares)
        for name, value in shares.items():
            self.train_trackers[name].update_state(value)

    def train_results(self):
        return step_logs({name: tracker.result() for name, tracker in self.train_trackers.items()})

    def call(self, x, training=False):
        return self.infer(x, training=training)["y"]

    def zeros_output(self, x):
        """y = 0 for a batch of x: [B, L], or [B, H, W, C] matching x's spatial size."""
        return tf.repeat(tf.zeros_like(x[..., :1]), self.spec.output_shape[-1], axis=-1)

    def update_eval_metrics(self, outputs, y_true) -> None:
        kinds = {"": outputs["y"]}
        if "y_inference_net" in outputs:
            kinds["inference_net_"] = outputs["y_inference_net"]
        sums = {prefix + name: value  # metric -> (numerator, denominator) over this replica's examples
                for prefix, y in kinds.items() for name, value in metric_sums(self.spec, y, y_true).items()}
        # Keras reports a step's outputs averaged over replicas; summing the sums first makes
        # every replica's metrics those of the global batch (exact also for uneven splits).
        context = _replica_context()
        if context is not None:
            sums = context.all_reduce(tf.distribute.ReduceOp.SUM, sums)
        for name, (numerator, denominator) in sums.items():
            tracker = self.eval_trackers[name]
            if isinstance(tracker, RatioMetric):
                tracker.update_state(numerator, denominator)
            else:
                tracker.update_state(tf.math.divide_no_nan(numerator, denominator), sample_weight=denominator)

    def test_step(self, data):
        x, y_true = data[0], tf.cast(data[1], tf.float32)
        self.update_eval_metrics(self.infer(x), y_true)
        return step_logs({name: tracker.result() for name, tracker in self.eval_trackers.items()})

    def predict_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        outputs = self.infer(x)
        outputs["labels"] = oracles.binarize(outputs["y"], self.spec.multiclass, self.spec.threshold)
        return outputs

    # ----- helpers shared by the sampling methods --------------------------------------------
    def uniform(self, shape):
        """U[0, 1) draws from the sampling generator: distinct on every replica."""
        return self.sampling_rng.uniform(shape)

class _NamedLearningRate:
    """An optimizer's learning rate under the model attribute's name (TensorBoard's tag)."""

    def __init__(self, name: str, optimizer: keras.optimizers.Optimizer):
        self.name, self._optimizer = name, optimizer

    @property
    def learning_rate(self):
        return self._optimizer.learning_rate


class TrainingSteps:
    """`model.optimizer` of a method with two optimizers: what Keras reads there. `iterations`
    is the number of training steps, the D optimizer's (applied once per step: the G optimizer
    of ImplicitEnergy takes several), which keras.callbacks.TensorBoard uses as the x-axis of
    its evaluation_*_vs_iterations curves; `optimizers` gives it each learning rate by name.
    Not a trackable object, so checkpoints hold the two optimizers under their own names only."""

    def __init__(self, d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer):
        self._by_name = {"d_optimizer": d_optimizer, "g_optimizer": g_optimizer}

    @property
    def iterations(self):
        return self._by_name["d_optimizer"].iterations

    @property
    def optimizers(self):
        return [_NamedLearningRate(name, optimizer) for name, optimizer in self._by_name.items()]

    @property
    def built(self) -> bool:
        return all(optimizer.built for optimizer in self._by_name.values())

    def build(self, variables) -> None:
        for optimizer in self._by_name.values():
            if not optimizer.built:
                optimizer.build(variables)


@dataclasses.dataclass
class WithInferenceNetworkSettings:
    """What the settings of every method with an inference network begin with: its two
    optimizers, Adam with β1 = 0.5 by default (as the adversarially trained LDRSP has it), and
    the test-time refinement of G(x)."""
    d_optimizer: OptimizerConfig = dataclasses.field(default_factory=lambda: OptimizerConfig(beta_1=0.5))
    """Of the value / energy network."""
    g_optimizer: OptimizerConfig = dataclasses.field(default_factory=lambda: OptimizerConfig(beta_1=0.5))
    """Of the inference network(s)."""
    test_refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)


class WithInferenceNetwork(StructuredModel):
    """Methods with an inference network G(x) (or A_θ(x)) beside the value/energy network:
    two optimizers, `d_optimizer` for the value/energy network and `g_optimizer` for the
    inference network(s), and two predictions to score, the final one and G(x) alone."""

    optimizer_names = ("d_optimizer", "g_optimizer")

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)  # Keras's default would be an unused RMSprop
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.optimizer = TrainingSteps(self.d_optimizer, self.g_optimizer)

    def prediction_kinds(self):
        return ("", "inference_net_")
