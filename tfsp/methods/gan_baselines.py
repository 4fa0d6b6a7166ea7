"""The GAN-family baselines of the LDRSP paper's comparison: GAN, LSGAN, WGAN-GP and EBGAN.

Each has LDRSP's networks (tfsp.build: the task's inference network G, and D(x, y) of the kind
the task file gives LDRSP: the SPEN-style MultiLabelEnergy on multi-label, DVN's convolutional
value net on horses), LDRSP's optimizers and LDRSP's prediction: G(x) alone, and G(x)
refined by normalized-gradient ascent on D's value (`value_map`) with the task's projection
(test_refine; `select_refine_steps` picks the step count on validation as for LDRSP). They
differ from LDRSP in the losses alone. One training step updates D once on real tuples
(x, y*) and generated ones (x, ŷ) with ŷ = G(x) (from G in inference mode, as LDRSP's tuples),
then G once on cross-entropy + λ_g·(the family's generator loss) with D fixed; with LDRSP's
schedule (tfsp.methods.schedule: g_pretrain_updates, d_warmup_updates) G is first trained on
cross-entropy alone, then D alone on the frozen G.

With s = D(x, y) the network's output, one logit per example or, for the patch discriminator,
one per pixel, whose losses are averaged per example as LDRSP's are, and σ the logistic function:

  gan      D: −log σ(s(y*)) − log(1 − σ(s(ŷ)))          Goodfellow et al. 2014, Eq. 1
           G: −log σ(s(ŷ)), the non-saturating loss       (their Sec. 3)
           value refined: σ(s), D's probability of "real", as LDRSP's sigmoid head
  lsgan    D: ½(s(y*) − 1)² + ½(s(ŷ) − 0)²               Mao et al. 2017, Eq. 2 with a = 0, b = c = 1
           G: ½(s(ŷ) − 1)²
           value refined: s; D's output is linear, as in the paper (LDRSP's regression has a
           sigmoid head and oracle targets instead)
  wgan_gp  D: C(ŷ) − C(y*) + λ·(‖∇_y C(x, ȳ)‖₂ − 1)²    Gulrajani et al. 2017, Eq. 3
           with C(x, y) the per-example mean of s (no sigmoid), ȳ = ε·y* + (1 − ε)·ŷ and
           ε ~ U[0, 1] per example (their Algorithm 1), λ = gradient_penalty_weight (10)
           G: −C(ŷ)
           value refined: C
  ebgan    D: E(y*) + [m − E(ŷ)]₊                         Zhao et al. 2017, Eq. 1
           G: E(ŷ)                                        (their Eq. 2)
           value refined: −E, i.e. refinement descends the energy
           E(x, y) = the per-example mean of softplus(s) ≥ 0, m = margin (1.0).

Departures from the papers, each so that the baselines differ from LDRSP in their losses only:
  * G is conditioned: G(x), not G(z), and is also trained on cross-entropy to y* (LDRSP's G's
    surrogate loss), with the adversarial term weighted by λ_g = generator_adversarial_weight;
  * one D update per G update: WGAN-GP's paper takes n_critic = 5 critic steps per generator
    step and Adam(lr 1e-4, β1 0, β2 0.9); here D and G have LDRSP's task-file optimizers
    (tfsp's OptimizerConfig has no β2: Keras' 0.999);
  * EBGAN's energy is softplus of LDRSP's D, not the paper's autoencoder reconstruction error
    ‖Dec(Enc(x, y)) − (x, y)‖, which would need another network (an autoencoder of concat(x, y)
    has no counterpart in LDRSP's D on multi-label), and there is no pull-away term.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict, Optional

import keras
import tensorflow as tf

from tfsp.config import POSITIVE, at_least
from tfsp.methods.base import WithInferenceNetwork
from tfsp.methods.registry import register
from tfsp.methods.replicas import per_example_mean
from tfsp.methods.schedule import PhasedSettings, PhasedTraining
from tfsp.methods.spen import EnergyValue
from tfsp.networks import ValueNetwork
from tfsp.refine import per_example, value_and_gradient


@dataclasses.dataclass
class GANSettings(PhasedSettings):
    """d_optimizer trains D, g_optimizer G: LDRSP's defaults (Adam, β1 0.5) for every baseline;
    LDRSP's schedule (g_pretrain_updates, d_warmup_updates)."""
    generator_adversarial_weight: float = 1.0
    """λ_g: weight of G's adversarial term beside its cross-entropy (as LDRSP's)."""

    RANGES: ClassVar = {**PhasedSettings.RANGES, "generator_adversarial_weight": at_least(0)}


@dataclasses.dataclass
class WGANGPSettings(GANSettings):
    gradient_penalty_weight: float = 10.0
    """λ of the gradient penalty (Gulrajani et al. 2017: 10)."""

    RANGES: ClassVar = {**GANSettings.RANGES, "gradient_penalty_weight": at_least(0)}


@dataclasses.dataclass
class EBGANSettings(GANSettings):
    margin: float = 1.0
    """m: D pushes the energy of generated outputs up to m (in units of the per-position mean
    softplus energy, whose value at a zero logit is log 2)."""

    RANGES: ClassVar = {**GANSettings.RANGES, "margin": POSITIVE}


def gradient_penalty(critic_fn, y):
    """(‖∇_y C(y)‖₂ − 1)² per example [B], for critic_fn(y) -> C [B] (Gulrajani et al. 2017,
    Eq. 3). Examples are scored independently, so the gradient of the batch's sum is each
    example's own gradient. Differentiable in the critic's weights (a second-order gradient)."""
    _, gradient = value_and_gradient(critic_fn, y)
    axes = list(range(1, gradient.shape.rank))
    # The epsilon keeps the norm's gradient finite where ∇C = 0.
    norm = tf.sqrt(tf.reduce_sum(tf.square(gradient), axis=axes) + 1e-12)
    return tf.square(norm - 1.0)


class AdversarialBaseline(PhasedTraining, WithInferenceNetwork):
    """What the four baselines share (the module docstring); a family gives D's loss terms
    (`discriminator_losses`), G's adversarial loss (`generator_loss`) and D's value
    (`value_map`, the base's sigmoid unless overridden). `d_optimizer` trains D, `g_optimizer` G."""

    refines = True
    extra_terms: ClassVar[tuple] = ()
    """Names of D's loss terms besides "real" and "fake" (tracked as d_<name>)."""

    def __init__(self, spec, inference_net: keras.Model, value_net: ValueNetwork,
                 settings: Optional[GANSettings] = None, value_net_average: Optional[ValueNetwork] = None,
                 **kwargs):
        settings = settings or GANSettings()
        super().__init__(spec, test_refine=settings.test_refine, **kwargs)
        self.inference_net = inference_net
        self.value_net = value_net
        self.generator_adversarial_weight = float(settings.generator_adversarial_weight)
        self.init_schedule(settings)
        self.init_value_average(settings.value_average, value_net_average)
        self.d_term_weights: Dict[str, float] = {}
        """Weights of D's loss terms by name (1 for those not named)."""
        self.add_train_statistics(["d_loss", "d_real", "d_fake", *(f"d_{name}" for name in self.extra_terms),
                                   "g_loss", "g_cross_entropy", "g_adversarial", "value_ground_truth",
                                   "value_inference_net", "oracle_inference_net"])

    @classmethod
    def from_settings(cls, settings: GANSettings, parts, **common) -> "AdversarialBaseline":
        return cls(inference_net=parts.inference_net(), value_net=parts.value_net(), settings=settings,
                   value_net_average=parts.averaged_value_net(settings.value_average), **common)

    def initial_output(self, x, training=False):
        y_g = self.spec.output_probabilities(self.inference_net(x, training=training))
        return y_g, {"y_inference_net": y_g}

    def generate_samples(self, x, y_true):
        """{"inference_net": G(x)}: D's generated outputs (no gradient flows into G from here)."""
        logits = tf.stop_gradient(self.inference_net(x, training=False))
        return {"inference_net": self.spec.output_probabilities(logits)}

    # ----- what each family defines -------------------------------------------------------------
    def discriminator_losses(self, score_fn, y_true, y_fake) -> Dict[str, tf.Tensor]:
        """{"real": ..., "fake": ..., *extra_terms}: D's losses per example ([B]) or per position
        ([B, ...], averaged per example), with score_fn(y) -> s the network's output in training mode."""
        raise NotImplementedError

    def generator_loss(self, score_fake):
        """G's adversarial loss per example or per position, from s(x, G(x)) with D fixed."""
        raise NotImplementedError

    # ----- the training step --------------------------------------------------------------------
    def update_discriminator(self, x, y_true, y_fake, batch):
        """One update of D on real (x, y*) and generated (x, y_fake); returns (d_loss, {term: share})."""
        with tf.GradientTape() as tape:
            context = self.value_net.precompute(x, training=True)
            score_fn = lambda y: self.value_net.score(context, y, training=True)  # noqa: E731
            terms = {name: batch.mean(loss)
                     for name, loss in self.discriminator_losses(score_fn, y_true, y_fake).items()}
            d_loss = tf.add_n([self.d_term_weights.get(name, 1.0) * term for name, term in terms.items()])
            d_loss += batch.penalty(self.value_net.losses)
        variables = self.value_net.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
        self.update_value_average(self.d_optimizer.iterations)
        return d_loss, terms

    def update_generator(self, x, y_true, batch, context, update: bool = True):
        """One update of G on cross-entropy + λ_g·adversarial loss with D fixed (`context`: D's
        precompute(x); None: cross-entropy alone, G's pretraining); returns the three. With
        `update` false (D's warm-up) only the losses, G left as it is."""
        with tf.GradientTape() as tape:
            logits = self.inference_net(x, training=True)
            cross_entropy = batch.mean(self.spec.cross_entropy(y_true, logits))
            adversarial = tf.zeros_like(cross_entropy)
            if context is not None:
                score_fake = self.value_net.score(context, self.spec.output_probabilities(logits))
                adversarial = batch.mean(self.generator_loss(score_fake))
            g_loss = (cross_entropy + self.generator_adversarial_weight * adversarial
                      + batch.penalty(self.inference_net.losses))
        if update:
            variables = self.inference_net.trainable_variables
            self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
        return g_loss, cross_entropy, adversarial

    def train_step(self, data):
        x, y_true = data[0], tf.cast(data[1], tf.float32)
        x = self.prepare_inputs(x)
        batch = self.global_batch(x)
        if self.training_phase == "pretrain":
            g_loss, g_cross_entropy, _ = self.update_generator(x, y_true, batch, None)
            self.track(loss=g_loss, g_loss=g_loss, g_cross_entropy=g_cross_entropy)
            return self.train_results()
        y_fake = self.generate_samples(x, y_true)["inference_net"]
        d_loss, d_terms = self.update_discriminator(x, y_true, y_fake, batch)
        context = self.value_net.precompute(x)  # of the updated D, which G's update leaves fixed
        # In D's warm-up G is frozen: its losses are tracked, not applied.
        g_loss, g_cross_entropy, g_adversarial = self.update_generator(
            x, y_true, batch, context, update=self.training_phase == "joint")
        value_fn = self.value_from(context)  # D's value as refinement ascends it
        self.track(loss=d_loss + g_loss, d_loss=d_loss, g_loss=g_loss, g_cross_entropy=g_cross_entropy,
                   g_adversarial=g_adversarial, value_ground_truth=batch.mean(value_fn(y_true)),
                   value_inference_net=batch.mean(value_fn(y_fake)),
                   oracle_inference_net=batch.mean(self.spec.oracle_fn(y_fake, y_true)),
                   **{f"d_{name}": term for name, term in d_terms.items()})
        return self.train_results()


@register("gan", settings=GANSettings)
class GAN(AdversarialBaseline):
    """Goodfellow et al. 2014: D a real/fake classifier (sigmoid cross-entropy), G non-saturating."""

    def discriminator_losses(self, score_fn, y_true, y_fake):
        # −log σ(s) = softplus(−s), −log(1 − σ(s)) = softplus(s): the stable forms.
        return {"real": tf.nn.softplus(-score_fn(y_true)), "fake": tf.nn.softplus(score_fn(y_fake))}

    def generator_loss(self, score_fake):
        return tf.nn.softplus(-score_fake)


@register("lsgan", settings=GANSettings)
class LSGAN(EnergyValue, AdversarialBaseline):
    """Mao et al. 2017: least-squares targets 1 (real) / 0 (generated) on D's linear output;
    G regresses D(x, G(x)) to 1. Refinement ascends D's output (EnergyValue: the raw score)."""

    def discriminator_losses(self, score_fn, y_true, y_fake):
        return {"real": 0.5 * tf.square(score_fn(y_true) - 1.0), "fake": 0.5 * tf.square(score_fn(y_fake))}

    def generator_loss(self, score_fake):
        return 0.5 * tf.square(score_fake - 1.0)


@register("wgan_gp", settings=WGANGPSettings)
class WGANGP(EnergyValue, AdversarialBaseline):
    """Gulrajani et al. 2017: a critic without sigmoid and the gradient penalty on interpolates
    of y* and G(x). Refinement ascends the critic (EnergyValue: the raw score)."""

    extra_terms = ("gradient_penalty",)

    def __init__(self, spec, inference_net, value_net, settings: Optional[WGANGPSettings] = None, **kwargs):
        settings = settings or WGANGPSettings()
        super().__init__(spec, inference_net, value_net, settings=settings, **kwargs)
        self.d_term_weights["gradient_penalty"] = float(settings.gradient_penalty_weight)

    def discriminator_losses(self, score_fn, y_true, y_fake):
        critic_fn = lambda y: per_example_mean(score_fn(y))  # noqa: E731 -- C(x, y), one per example
        epsilon = per_example(self.uniform([tf.shape(y_true)[0]]), y_true)
        interpolates = epsilon * y_true + (1.0 - epsilon) * y_fake  # inside the feasible set (convex)
        return {"real": -critic_fn(y_true), "fake": critic_fn(y_fake),
                "gradient_penalty": gradient_penalty(critic_fn, interpolates)}

    def generator_loss(self, score_fake):
        return -score_fake


@register("ebgan", settings=EBGANSettings)
class EBGAN(AdversarialBaseline):
    """Zhao et al. 2017: D an energy E(x, y) ≥ 0 (softplus of D's output; see the module
    docstring), low on y*, pushed up to the margin on G(x); G lowers E(x, G(x)). Refinement
    ascends −E, i.e. descends the energy."""

    def __init__(self, spec, inference_net, value_net, settings: Optional[EBGANSettings] = None, **kwargs):
        settings = settings or EBGANSettings()
        super().__init__(spec, inference_net, value_net, settings=settings, **kwargs)
        self.margin = float(settings.margin)

    def discriminator_losses(self, score_fn, y_true, y_fake):
        # The hinge is on each example's energy (the paper's D(x) is one number per example).
        energy_fake = per_example_mean(tf.nn.softplus(score_fn(y_fake)))
        return {"real": tf.nn.softplus(score_fn(y_true)), "fake": tf.nn.relu(self.margin - energy_fake)}

    def generator_loss(self, score_fake):
        return tf.nn.softplus(score_fake)

    def value_map(self, context, training=False, net=None):
        net = net or self.value_net
        return lambda y: -tf.nn.softplus(net.score(context, y, training=training))
