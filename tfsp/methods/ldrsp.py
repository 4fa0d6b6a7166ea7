"""LDRSP / ALEN: an inference network G and a value network D trained adversarially
with least-squares regression losses (Pan et al., "Learning Discriminators as
Energy Networks in Adversarial Learning"; "Adversarial Localized Energy Network").

D (sigmoid head) is regressed, with weights from LDRSP Eq. 10 / ALEN Eq. 6a-6c, to
  1          on ground truth (x, y*),
  v*(G(x))   on G's outputs,
  v*(ŷ)      on refined samples ŷ (normalized ascent on D from G(x))  [λ_v],
  v*(ỹ)      on adversarial samples ỹ (ascent on D's loss)            [β_v],
  v*(y_t)    optionally on an iterate y_t drawn uniformly from that refinement's path
             (`trajectory_weight`), as DVN's trajectory tuples, which the papers do not use;
             for a fraction of the examples (`refine_from_zeros`) that refinement starts from
             zeros instead of G(x), as DVN's inference does,
  v*(y)      optionally on tuples made from y* (`extra_sample_weights`: stratified
             interpolations to noise, another example's y*), which the papers do not use;
G is trained on cross-entropy plus λ_g·½(D(x, G(x)) − 1)² (LDRSP Eq. 6, ALEN Eq. 11).
Both use Adam with β1 = 0.5 (two optimizers, as in the keras-io GAN examples).

Optional schedule (`training_phase`, switched by the PhaseSchedule callback at configured
update counts): "pretrain" trains G on cross-entropy alone, "warmup" trains D alone on the
frozen G's tuples, "joint" is the algorithm above. D may also see noisy versions of G's
outputs, output_probabilities(logits + σ·ε) (`noisy_weight`), so that it is calibrated
around G(x), where refinement goes.
Prediction: G(x) refined by normalized-gradient ascent on D with projection.

The ALEN paper's ablations (its Table 1) and what they are in tfsp (tasks/<task>.json has a
section for each that is a configuration):
  InfNet (G on its surrogate loss alone)   the feed-forward method (feedforward / fcn);
  AEN (D on y* and G(x) only, no refined   LDRSP with inference_weight = 0 and
       or adversarial tuples)              adversarial_weight = 0 (method aen);
  ALEN without the task loss (G on the     LDRSP with task_loss_weight = 0
       adversarial term alone)             (method alen_no_task_loss);
  ALEN's G alone                           any LDRSP run's G-alone prediction (the results'
                                           metrics_inference_net, metrics inference_net_*).
The GAN-family rows of the LDRSP paper's comparison are methods of their own
(tfsp.methods.gan_baselines).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict, Optional, Sequence

import keras
import tensorflow as tf

from tfsp.config import POSITIVE, PROBABILITY, at_least, each
from tfsp.methods.base import WithInferenceNetwork
from tfsp.methods.replicas import per_example_mean
from tfsp.methods.tuples import (REFERENCE_SAMPLE_KINDS, AdversarialConfig, adversarial_samples,
                                 checked_sample_weights, mixed_starts, ranking_loss, reference_samples,
                                 score_samples, trajectory_samples)
from tfsp.methods.registry import register
from tfsp.methods.schedule import PhasedSettings, PhasedTraining
from tfsp.networks import ValueNetwork, track_layer_lists
from tfsp.refine import RefineConfig, per_example, refine


EXTRA_SAMPLE_KINDS = tuple(k for k in REFERENCE_SAMPLE_KINDS if k != "ground_truth")
"""D's loss has its ground-truth term already (target 1)."""


def _half_squared_error(prediction, target):
    return 0.5 * tf.square(prediction - target)


VALUE_LOSSES = ("squared_error", "cross_entropy")


def value_regression_loss(kind: str, scores, target):
    """D's per-position loss for its raw scores (logits) and oracle target(s) v* in [0, 1]:
    squared_error, the papers' ½(sigmoid(s) − v*)², or cross_entropy, DVN's sigmoid
    cross-entropy to v*, whose gradient sigmoid(s) − v* does not vanish where the sigmoid
    saturates, so D can recover from valuing a bad output at 1."""
    scores = tf.cast(scores, tf.float32)
    target = tf.broadcast_to(tf.cast(target, tf.float32), tf.shape(scores))
    if kind == "cross_entropy":
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=scores)
    return _half_squared_error(tf.sigmoid(scores), target)


@dataclasses.dataclass
class LDRSPSettings(PhasedSettings):
    """d_optimizer trains D, g_optimizer G (Adam β1 0.5, as in the papers)."""
    train_refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    """The refinement of G(x) that makes D's refined tuples."""
    adversarial: AdversarialConfig = dataclasses.field(default_factory=AdversarialConfig)
    generator_adversarial_weight: float = 1.0
    """λ_g: weight of G's adversarial term."""
    task_loss_weight: float = 1.0
    """Weight of G's cross-entropy in joint training (0: ALEN without the task loss, G on
    the adversarial term alone); the "pretrain" phase trains on cross-entropy whatever it is."""
    inference_weight: float = 1.0
    """λ_v: weight of refined samples in D's loss."""
    adversarial_weight: float = 1.0
    """β_v: weight of adversarial samples in D's loss."""
    trajectory_weight: float = 0.0
    """Weight of an iterate drawn uniformly (per example) from train_refine's path from G(x)."""
    refine_from_zeros: float = 0.0
    """Fraction of the examples whose training refinement (refined and trajectory tuples) starts
    from zeros instead of G(x), as DVN's inference does: D is then also fitted between zeros and
    G(x), not only around G's outputs on the training images, which G fits better than new ones."""
    noisy_weight: float = 0.0
    """Weight in D's loss of noisy G outputs, output_probabilities(logits + noise_std·ε)."""
    noise_std: float = 1.0
    extra_sample_weights: Dict[str, float] = dataclasses.field(default_factory=dict)
    """Weights in D's loss of tuples made from y* alone, which the papers do not use:
    stratified (interpolations to noise), mismatched (another example's ground truth)."""
    value_loss: str = "squared_error"
    """D's regression loss (value_regression_loss): squared_error as in the papers, or
    cross_entropy as DVN's; G's adversarial term stays ½(D(x, G(x)) − 1)²."""
    ranking_weight: float = 0.0
    """Weight in D's loss of a pairwise ranking hinge over each example's tuples (ground truth
    included): D's logits ordered as the tuples' oracle values, with a gap of at least
    ranking_margin per unit of oracle value (tuples.ranking_loss). Not in the papers."""
    ranking_margin: float = 5.0
    """Logit gap per unit of oracle value (5: about the logit slope of a value near 0.8)."""
    heldout_folds: int = 0
    """K >= 2: K more inference networks G_1..G_K, G_k trained on cross-entropy (whenever G is
    trained) on the training examples outside fold k; D then also regresses the oracle of each
    training example's held-out output G_fold(x) (`heldout`), whose errors are those of an
    inference network on an image it has not seen, as G's are at test time (G's own outputs on
    its training images are better than on new ones), and the training refinement can start
    there (refine_from_heldout). Not in the papers: cross-fitting, as in stacking."""
    heldout_weight: float = 1.0
    """Weight in D's loss of the held-out outputs (with heldout_folds)."""
    refine_from_heldout: float = 0.0
    """Fraction of the examples whose training refinement starts from their held-out output
    (with heldout_folds), so D also sees the path test-time refinement takes from an unseen
    image's G output; refine_from_zeros + refine_from_heldout <= 1, the rest start from G(x)."""

    RANGES: ClassVar = {**PhasedSettings.RANGES,
                        "generator_adversarial_weight": at_least(0), "task_loss_weight": at_least(0),
                        "inference_weight": at_least(0),
                        "adversarial_weight": at_least(0), "trajectory_weight": at_least(0),
                        "refine_from_zeros": PROBABILITY, "noisy_weight": at_least(0), "noise_std": at_least(0),
                        "extra_sample_weights": each(at_least(0)),
                        "value_loss": ((lambda v: v in VALUE_LOSSES), " or ".join(VALUE_LOSSES)),
                        "ranking_weight": at_least(0), "ranking_margin": POSITIVE,
                        "heldout_folds": ((lambda v: v == 0 or v >= 2), "0 or at least 2"),
                        "heldout_weight": at_least(0), "refine_from_heldout": PROBABILITY}


@register("ldrsp", settings=LDRSPSettings)
class LDRSP(PhasedTraining, WithInferenceNetwork):
    """`d_optimizer` trains D, `g_optimizer` trains G."""

    refines = True

    def __init__(self, spec, inference_net: keras.Model, value_net: ValueNetwork,
                 settings: Optional[LDRSPSettings] = None, fold_nets: Sequence[keras.Model] = (),
                 value_net_average: Optional[ValueNetwork] = None, **kwargs):
        settings = settings or LDRSPSettings()
        super().__init__(spec, test_refine=settings.test_refine, **kwargs)
        self.inference_net = inference_net
        self.value_net = value_net
        self.train_refine = self.training_refinement(settings.train_refine)
        self.adversarial = settings.adversarial
        self.generator_adversarial_weight = float(settings.generator_adversarial_weight)
        self.task_loss_weight = float(settings.task_loss_weight)
        self.inference_weight = float(settings.inference_weight)
        self.adversarial_weight = float(settings.adversarial_weight)
        self.trajectory_weight = float(settings.trajectory_weight)
        self.refine_from_zeros = float(settings.refine_from_zeros)
        extra = checked_sample_weights(settings.extra_sample_weights, EXTRA_SAMPLE_KINDS, "LDRSP extra")
        self.extra_sample_weights = extra
        self.noisy_weight, self.noise_std = float(settings.noisy_weight), float(settings.noise_std)
        if settings.value_loss not in VALUE_LOSSES:
            raise ValueError(f"LDRSP value_loss must be one of {VALUE_LOSSES}, got {settings.value_loss!r}")
        self.value_loss = settings.value_loss
        self.ranking_weight, self.ranking_margin = float(settings.ranking_weight), float(settings.ranking_margin)
        self.heldout_folds = int(settings.heldout_folds)
        if self.heldout_folds == 1 or self.heldout_folds < 0:
            raise ValueError(f"LDRSP heldout_folds must be 0 or at least 2, got {self.heldout_folds}")
        if len(fold_nets) != self.heldout_folds:
            raise ValueError(f"LDRSP heldout_folds={self.heldout_folds} needs as many fold networks, "
                             f"got {len(fold_nets)}")
        self.fold_nets = list(fold_nets)
        track_layer_lists(self)  # fold_net_<k> in checkpoints
        self.heldout_weight = float(settings.heldout_weight)
        self.refine_from_heldout = float(settings.refine_from_heldout)
        if self.refine_from_heldout and not self.heldout_folds:
            raise ValueError("LDRSP refine_from_heldout needs heldout_folds >= 2")
        if self.refine_from_zeros + self.refine_from_heldout > 1:
            raise ValueError(f"LDRSP refine_from_zeros + refine_from_heldout must be at most 1, got "
                             f"{self.refine_from_zeros} + {self.refine_from_heldout}")
        self.init_schedule(settings)
        self.init_value_average(settings.value_average, value_net_average)
        names = ["d_loss", "d_ground_truth", "d_inference_net"]
        if self.inference_weight:
            names += ["d_refined", "oracle_refined"]
        if self.adversarial_weight:
            names += ["d_adversarial", "oracle_adversarial"]
        if self.trajectory_weight:
            names += ["d_trajectory", "oracle_trajectory"]
        names += [f"{prefix}_{kind}" for kind in extra for prefix in ("d", "oracle")]
        if self.noisy_weight:
            names += ["d_noisy_inference_net", "oracle_noisy_inference_net"]
        if self.heldout_folds:
            names += ["d_heldout", "oracle_heldout", "g_fold_cross_entropy"]
        if self.ranking_weight:
            names += ["d_ranking"]
        names += ["oracle_inference_net", "g_loss", "g_cross_entropy", "g_adversarial",
                  "value_ground_truth", "value_inference_net"]
        self.add_train_statistics(names)

    @classmethod
    def from_settings(cls, settings: LDRSPSettings, parts, **common) -> "LDRSP":
        return cls(inference_net=parts.inference_net(), value_net=parts.value_net(), settings=settings,
                   fold_nets=[parts.inference_net(name=f"fold_net_{k}") for k in range(settings.heldout_folds)],
                   value_net_average=parts.averaged_value_net(settings.value_average), **common)

    @classmethod
    def training_folds(cls, settings: LDRSPSettings) -> int:
        return settings.heldout_folds

    def build_networks(self, x) -> None:
        super().build_networks(x)
        for net in self.fold_nets:
            net(self.prepare_inputs(x))

    def split_folds(self, y):
        """(y*, fold [B] int32 or None): training labels carry the fold as their last channel when
        heldout_folds (tfsp.datasets.with_fold_channel); other labels (validation) do not."""
        if not self.heldout_folds or y.shape[-1] == self.spec.output_shape[-1]:
            return y, None
        fold = tf.reshape(y[..., -1], [tf.shape(y)[0], -1])[:, 0]
        return y[..., :-1], tf.cast(tf.round(fold), tf.int32)

    def heldout_output(self, x, fold):
        """Per example, the output of the fold network that did not train on it."""
        outputs = tf.stack([self.spec.output_probabilities(net(x, training=False)) for net in self.fold_nets])
        picked = tf.gather_nd(outputs, tf.stack([fold, tf.range(tf.shape(fold)[0])], axis=1))
        return tf.stop_gradient(picked)

    def initial_output(self, x, training=False):
        y_g = self.spec.output_probabilities(self.inference_net(x, training=training))
        return y_g, {"y_inference_net": y_g}

    def generate_samples(self, x, y_true, fold=None):
        """{kind: y}: G(x), its refinement and adversarial samples from the current G and D, and
        with heldout_folds and the examples' `fold`, their held-out outputs; no gradient flows
        into any network from here."""
        oracle = self.spec.oracle_fn
        logits = tf.stop_gradient(self.inference_net(x, training=False))
        y_g = self.spec.output_probabilities(logits)
        context = self.value_net.precompute(x)
        value_fn = self.value_from(context)
        samples = {"inference_net": y_g}
        y_heldout = None
        if self.heldout_folds and fold is not None:
            y_heldout = samples["heldout"] = self.heldout_output(x, fold)
        if self.noisy_weight:
            samples["noisy_inference_net"] = self.spec.output_probabilities(
                logits + self.noise_std * self.sampling_rng.normal(tf.shape(logits)))
        if self.inference_weight or self.trajectory_weight:
            start = y_g
            if self.refine_from_heldout and y_heldout is not None:
                u = per_example(self.uniform([tf.shape(y_g)[0]]), y_g)
                start = tf.where(u < self.refine_from_zeros, self.zeros_output(x),
                                 tf.where(u < self.refine_from_zeros + self.refine_from_heldout, y_heldout, y_g))
            elif self.refine_from_zeros:
                start = mixed_starts(self, self.zeros_output(x), y_g, self.refine_from_zeros)
            result = refine(value_fn, start, self.train_refine, return_trajectory=bool(self.trajectory_weight))
            if self.inference_weight:
                samples["refined"] = tf.stop_gradient(result.y)
            if self.trajectory_weight:
                samples["trajectory"] = trajectory_samples(self, result.trajectory)
        if self.adversarial_weight:
            def regression_loss(y):
                target = tf.stop_gradient(oracle(y, y_true))
                return per_example_mean(value_regression_loss(
                    self.value_loss, self.value_net.score(context, y), target))
            samples["adversarial"] = adversarial_samples(self, regression_loss, value_fn,
                                                              y_true, y_g, self.adversarial)
        samples.update(reference_samples(self, self.extra_sample_weights, y_true))
        return samples

    def train_step(self, data):
        x, (y_true, fold) = data[0], self.split_folds(tf.cast(data[1], tf.float32))
        x = self.prepare_inputs(x)
        batch = self.global_batch(x)
        if self.training_phase == "pretrain":
            return self._pretrain_step(x, y_true, batch, fold)
        oracle = self.spec.oracle_fn
        samples = self.generate_samples(x, y_true, fold)
        targets = {kind: oracle(y, y_true) for kind, y in samples.items()}

        # D: regression (least squares in the papers) to 1 on y* and to v* on the samples.
        weights = {"inference_net": 1.0, "refined": self.inference_weight,
                   "adversarial": self.adversarial_weight, "trajectory": self.trajectory_weight,
                   "noisy_inference_net": self.noisy_weight, "heldout": self.heldout_weight,
                   **self.extra_sample_weights}
        with tf.GradientTape() as tape:
            context = self.value_net.precompute(x, training=True)
            scores = score_samples(self.value_net, context, {"ground_truth": y_true, **samples}, training=True)
            value_truth = tf.sigmoid(scores["ground_truth"])
            d_terms = {kind: batch.mean(value_regression_loss(self.value_loss, scores[kind],
                                                              targets.get(kind, 1.0)))
                       for kind in scores}
            d_loss = d_terms["ground_truth"] + tf.add_n(
                [weights[kind] * d_terms[kind] for kind in samples])
            if self.ranking_weight:
                # Over the tuples D is fitted on (weight > 0), ground truth included.
                ranked = {k: v for k, v in scores.items() if k == "ground_truth" or weights[k]}
                d_terms["ranking"] = batch.mean(ranking_loss(ranked, targets, self.ranking_margin))
                d_loss += self.ranking_weight * d_terms["ranking"]
            d_loss += batch.penalty(self.value_net.losses)
        d_variables = self.value_net.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_variables), d_variables))
        self.update_value_average(self.d_optimizer.iterations)

        # G: cross-entropy (weighted by task_loss_weight) plus λ_g·½(D(x, G(x)) − 1)² with D
        # fixed (not during D's warm-up).
        d_fixed = self.value_map(self.value_net.precompute(x))
        g_loss, g_cross_entropy, g_adversarial, value_g, fold_statistics = self._generator_update(
            x, y_true, batch, d_fixed, update=self.training_phase == "joint", fold=fold)

        self.track(loss=d_loss + g_loss, d_loss=d_loss, g_loss=g_loss, **fold_statistics,
                   g_cross_entropy=g_cross_entropy, g_adversarial=g_adversarial,
                   value_ground_truth=batch.mean(value_truth),
                   value_inference_net=batch.mean(value_g),
                   **{f"d_{kind}": term for kind, term in d_terms.items()},
                   **{f"oracle_{kind}": batch.mean(t) for kind, t in targets.items()})
        return self.train_results()

    def _generator_update(self, x, y_true, batch, d_fixed, update: bool, fold=None):
        """G's loss terms, and G's update when `update`; d_fixed None: cross-entropy alone. The
        fold networks (heldout_folds) train with G, each on cross-entropy for the examples outside
        its fold, in the same optimizer step (their variables are G's optimizer's too)."""
        fold_statistics = {}
        with tf.GradientTape() as tape:
            logits = self.inference_net(x, training=True)
            g_cross_entropy = batch.mean(self.spec.cross_entropy(y_true, logits))
            value_g = tf.zeros_like(g_cross_entropy)
            g_adversarial = tf.zeros_like(g_cross_entropy)
            g_loss = g_cross_entropy
            if d_fixed is not None:
                value_g = d_fixed(self.spec.output_probabilities(logits))
                g_adversarial = batch.mean(_half_squared_error(value_g, 1.0))
                g_loss = (self.task_loss_weight * g_cross_entropy
                          + self.generator_adversarial_weight * g_adversarial)
            g_loss += batch.penalty(self.inference_net.losses)
            fold_loss = tf.zeros_like(g_loss)
            if fold is not None:
                for k, net in enumerate(self.fold_nets):
                    outside = tf.cast(tf.not_equal(fold, k), tf.float32)
                    fold_loss += batch.mean(outside * self.spec.cross_entropy(y_true, net(x, training=True)))
                fold_statistics["g_fold_cross_entropy"] = fold_loss
            # The fold networks' variables are not in g_loss, nor G's in fold_loss.
            total = g_loss + fold_loss
        if update:
            g_variables = self.inference_net.trainable_variables
            if fold is not None:
                g_variables = g_variables + [v for net in self.fold_nets for v in net.trainable_variables]
            gradients = tape.gradient(total, g_variables)
            self.g_optimizer.apply_gradients(zip(gradients, g_variables))
        return g_loss, g_cross_entropy, g_adversarial, value_g, fold_statistics

    def _pretrain_step(self, x, y_true, batch, fold=None):
        g_loss, g_cross_entropy, _, _, fold_statistics = self._generator_update(
            x, y_true, batch, None, update=True, fold=fold)
        self.track(loss=g_loss, g_loss=g_loss, g_cross_entropy=g_cross_entropy, **fold_statistics)
        return self.train_results()
