"""Implicit training of an energy model (Shankar & Piratla, "Implicit Training of Energy Model
for Structured Prediction", Algorithm 1) as a bi-level problem:

    inner:  θ*(φ) = argmin_θ L_aux(θ, φ) = CE(y*, A_θ(x)) + λ·E_φ(x, A_θ(x))  (E per label, see aux_loss)
    outer:  min_φ L_prim(θ*(φ), φ)

Each train_step runs T_inner gradient steps on θ (warm-started from the previous batch; λ = 0 for
the first `pretrain_steps`, so A_θ starts as a cross-entropy classifier while E already learns), then
updates φ with the implicit gradient

    dL_prim/dφ = ∂_φ L_prim − (∂_φ∂_θ L_aux) · (∂_θ∂_θ L_aux)⁻¹ · ∂_θ L_prim,

where H⁻¹v is the von Neumann series α·Σ_{j≤J} (I − αH)^j v and every Hessian-vector and
mixed product is a back-over-back product of nested GradientTapes (`implicit_gradient`):
no Hessian is ever formed, and the memory cost is that of a few extra backward passes.

E = −V with V the MultiLabelEnergy score (spen.py). Primary losses (`primary_loss`):
  ssvm: [Δ(ȳ, y*) + V(ȳ) − V(y*)]₊ with ȳ = A_θ(x), Δ = 1 − F1;
  cd:   −log softmax_k V(y_k) at k = 0 over y_0 = y* and K samples y_k ~ Bernoulli(A_θ(x));
        the samples carry a straight-through gradient to θ (y_k = A + sg(b − A)), otherwise
        ∂_θ L_prim and with it the implicit term would be identically zero; with
        `cd_refined_negatives`, one more negative: A_θ(x) refined on V as at test time;
  dvn:  the DVN value regression: sigmoid cross-entropy of V(ŷ) against the oracle F1(ŷ, y*)
        for ŷ = A_θ(x), and against 1 for y* (V is then ascended through a sigmoid).
Prediction: A_θ(x) alone and A_θ(x) refined on V with refine().

Replication (tf.distribute): both losses are replicas' shares of global-batch means. The inner
θ steps go through the (summing) optimizer, so every replica holds the same θ; in the implicit
gradient v = ∂_θ L_prim and each Hessian-vector product are summed over the replicas, so the
series is that of the global batch on every replica, while ∂_φ L_prim and the mixed product
stay shares for the outer optimizer to sum.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar, List, NamedTuple, Optional, Sequence

import keras
import tensorflow as tf

from tfsp.config import POSITIVE, at_least
from tfsp.methods.base import WithInferenceNetwork, WithInferenceNetworkSettings
from tfsp.methods.replicas import repeat, sum_over_replicas
from tfsp.methods.registry import register
from tfsp.methods.spen import ssvm_hinge
from tfsp.networks import ValueNetwork
from tfsp.refine import refine

PRIMARY_LOSSES = ("ssvm", "cd", "dvn")


@dataclasses.dataclass
class ImplicitSettings(WithInferenceNetworkSettings):
    """The implicit trainer (Shankar & Piratla, Algorithm 1); d_optimizer is the outer optimizer
    (the energy φ), g_optimizer the inner one (A's θ)."""
    primary_loss: str = "ssvm"
    """The outer loss, ssvm | cd | dvn (--primary_loss); results are named and tabled by it."""
    inner_steps: int = 1
    """T_inner: gradient steps on the inference network θ per batch."""
    neumann_terms: int = 5
    """J: terms of the von Neumann series for the inverse-Hessian-vector product."""
    neumann_step: float = 0.01
    """α of the series α·Σ_j (I − αH)^j v (needs α < 2/λ_max(H))."""
    energy_weight: float = 1.0
    """λ in L_aux = CE(y, A_θ(x)) + λ·E_φ(x, A_θ(x))."""
    cd_samples: int = 10
    """K: Bernoulli samples of A_θ(x) per example in the contrastive-divergence loss."""
    pretrain_epochs: float = 0.0
    """Epochs with λ = 0 (A_θ on cross-entropy alone) while the energy already trains."""
    cd_refined_negatives: bool = False
    """cd: also contrast y* with A_θ(x) refined on V by the test-time refinement (a constant of
    the step: no gradient through the ascent). Bernoulli samples of A_θ(x) leave V unconstrained
    along labels A_θ rules out, which is where ascent on V then goes; contrastive divergence
    proper takes its negatives from the model's own (V's) maximisation, as these are."""

    RANGES: ClassVar = {"primary_loss": ((lambda v: v in PRIMARY_LOSSES), f"one of {list(PRIMARY_LOSSES)}"),
                        "inner_steps": at_least(0), "neumann_terms": at_least(0), "neumann_step": POSITIVE,
                        "energy_weight": at_least(0), "cd_samples": at_least(1), "pretrain_epochs": at_least(0)}


class ImplicitGradient(NamedTuple):
    total: List[tf.Tensor]
    """dL_prim/dφ, one tensor per φ variable."""
    direct: List[tf.Tensor]
    """∂_φ L_prim."""
    implicit: List[tf.Tensor]
    """−(∂_φ∂_θ L_aux)·H⁻¹·∂_θ L_prim."""
    theta_gradient: List[tf.Tensor]
    """∂_θ L_prim (the vector v of the series), summed over the replicas."""


def _zeros_gradient(tape, target, sources, output_gradients=None):
    return tape.gradient(target, sources, output_gradients=output_gradients,
                         unconnected_gradients=tf.UnconnectedGradients.ZERO)


def _global_norm(tensors: Sequence[tf.Tensor]):
    return tf.linalg.global_norm(list(tensors))


def implicit_gradient(aux_loss_fn: Callable[[], tf.Tensor], primary_loss_fn: Callable[[], tf.Tensor],
                      theta_vars: Sequence[tf.Variable], phi_vars: Sequence[tf.Variable],
                      neumann_terms: int, neumann_step: float) -> ImplicitGradient:
    """The hyper-gradient of L_prim through the inner optimum θ*(φ), at the current θ.

    aux_loss_fn / primary_loss_fn: scalar losses computed from the current variable values
    (called several times; they must be deterministic, e.g. no dropout, fixed samples).
    neumann_terms J and neumann_step α: H⁻¹v ≈ α·Σ_{j=0..J} (I − αH)^j v, which converges
    when 0 < α < 2/λ_max(H) for a positive-definite H.

    Under tf.distribute the losses are this replica's shares of the global ones: `total`,
    `direct` and `implicit` are then shares too (an optimizer sums them), whereas
    `theta_gradient` and every term of the series are all-reduced, i.e. global.
    """
    theta_vars, phi_vars = list(theta_vars), list(phi_vars)
    with tf.GradientTape(persistent=True) as tape:
        primary = primary_loss_fn()
    direct = _zeros_gradient(tape, primary, phi_vars)
    v = sum_over_replicas(_zeros_gradient(tape, primary, theta_vars))
    del tape

    def hessian_vector_product(vector):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                aux = aux_loss_fn()
            gradient = _zeros_gradient(inner, aux, theta_vars)
        return sum_over_replicas(_zeros_gradient(outer, gradient, theta_vars, output_gradients=list(vector)))

    alpha = tf.constant(float(neumann_step), theta_vars[0].dtype)

    def body(term, total):
        hv = hessian_vector_product(term)
        term = [t - alpha * h for t, h in zip(term, hv)]
        return term, [s + t for s, t in zip(total, term)]

    _, series = repeat(neumann_terms, body, (v, v))
    inverse_hvp = [alpha * s for s in series]

    # Mixed product (∂_φ∂_θ L_aux)·p = ∂_φ [(∂_θ L_aux) · p] with p held constant.
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            aux = aux_loss_fn()
        gradient_theta = _zeros_gradient(inner, aux, theta_vars)
    mixed = _zeros_gradient(outer, gradient_theta, phi_vars, output_gradients=inverse_hvp)
    implicit = [-m for m in mixed]
    total = [d + i for d, i in zip(direct, implicit)]
    return ImplicitGradient(total=total, direct=direct, implicit=implicit, theta_gradient=v)


@register("implicit", settings=ImplicitSettings)
class ImplicitEnergy(WithInferenceNetwork):
    """`d_optimizer` is the outer optimizer (energy φ), `g_optimizer` the inner one (A's θ)."""

    refines = True

    def __init__(self, spec, inference_net: keras.Model, value_net: ValueNetwork,
                 settings: Optional[ImplicitSettings] = None, pretrain_steps: int = 0, **kwargs):
        """pretrain_steps: settings.pretrain_epochs in updates."""
        settings = settings or ImplicitSettings()
        super().__init__(spec, test_refine=settings.test_refine, **kwargs)
        if settings.primary_loss not in PRIMARY_LOSSES:
            raise ValueError(f"unknown primary_loss {settings.primary_loss!r}; valid: {list(PRIMARY_LOSSES)}")
        if settings.inner_steps < 0 or settings.neumann_terms < 0 or settings.cd_samples < 1:
            raise ValueError(f"implicit: inner_steps ({settings.inner_steps}) and neumann_terms "
                             f"({settings.neumann_terms}) must be >= 0 and cd_samples ({settings.cd_samples}) >= 1")
        self.inference_net = inference_net
        self.value_net = value_net
        self.primary_loss = settings.primary_loss
        self.inner_steps = int(settings.inner_steps)
        self.neumann_terms = int(settings.neumann_terms)
        self.neumann_step = float(settings.neumann_step)
        self.energy_weight = float(settings.energy_weight)
        self.cd_samples = int(settings.cd_samples)
        self.pretrain_steps = int(pretrain_steps)
        if settings.cd_refined_negatives and settings.primary_loss != "cd":
            raise ValueError("implicit: cd_refined_negatives applies to primary_loss=cd, not "
                             f"{settings.primary_loss!r}")
        self.cd_refined_negatives = bool(settings.cd_refined_negatives)
        self.negatives_refine = (self.training_refinement(settings.test_refine, "test_refine")
                                 if self.cd_refined_negatives else None)
        self.add_train_statistics(["inner_loss", "outer_loss", "inner_cross_entropy", "grad_norm_direct",
                                   "grad_norm_implicit", "grad_norm_theta_primary", "oracle_inference_net"])

    @classmethod
    def from_settings(cls, settings: ImplicitSettings, parts, **common) -> "ImplicitEnergy":
        return cls(inference_net=parts.inference_net(), value_net=parts.value_net(), settings=settings,
                   pretrain_steps=parts.updates(settings.pretrain_epochs), **common)

    @classmethod
    def variant(cls, settings: ImplicitSettings) -> str:
        return settings.primary_loss

    def initial_output(self, x, training=False):
        y_a = self.spec.output_probabilities(self.inference_net(x, training=training))
        return y_a, {"y_inference_net": y_a}

    def value_map(self, context, training=False, net=None):
        """V(x, ·): the raw score (E = −V); through a sigmoid for the DVN loss, whose V estimates F1."""
        if self.primary_loss == "dvn":
            return super().value_map(context, training=training, net=net)
        net = net or self.value_net
        return lambda y: net.score(context, y, training=training)

    # ----- the two levels --------------------------------------------------------------------
    def energy_weight_now(self):
        """λ, or 0 while A_θ is pre-trained on cross-entropy alone (the first `pretrain_steps`
        training steps, counted by φ's optimizer: θ's takes inner_steps updates per step)."""
        pretraining = self.d_optimizer.iterations < self.pretrain_steps
        return tf.where(pretraining, 0.0, self.energy_weight)

    def aux_loss(self, x, y_true, batch, training=False):
        """(L_aux, its cross-entropy part): CE(y*, A_θ(x)) + λ·E_φ(x, A_θ(x)) / L, this replica's
        shares of the global-batch means (`batch`, a GlobalBatch).

        CE is a mean over the L labels, so the energy (a sum over labels) is divided by L too:
        λ then weighs the two terms alike whatever the number of labels."""
        logits = self.inference_net(x, training=training)
        cross_entropy = batch.mean(self.spec.cross_entropy(y_true, logits))
        value_fn = self.value_map(self.value_net.precompute(x))
        num_outputs = float(math.prod(self.spec.output_shape))
        energy = -batch.mean(value_fn(self.spec.output_probabilities(logits))) / num_outputs
        loss = cross_entropy + self.energy_weight_now() * energy + batch.penalty(self.inference_net.losses)
        return loss, cross_entropy

    def bernoulli_noise(self, x):
        """Uniform noise [B, K, L] fixing the CD samples of one step (the losses are re-evaluated)."""
        return self.uniform(tf.concat([[tf.shape(x)[0], self.cd_samples], self.spec.output_shape], 0))

    def refined_negatives(self, x):
        """A_θ(x) refined on V (test_refine), held constant: the cd loss's model negatives."""
        y_a, _ = self.initial_output(x)
        value_fn = self.value_map(self.value_net.precompute(x))
        return tf.stop_gradient(refine(value_fn, y_a, self.negatives_refine).y)

    def primary(self, x, y_true, batch, noise=None, negatives=None):
        """L_prim(θ, φ): the chosen primary loss plus the energy's regularization (this replica's
        share of the global-batch value). negatives: [B, *output] more cd negatives, or None."""
        y_a = self.spec.output_probabilities(self.inference_net(x))
        context = self.value_net.precompute(x)
        if self.primary_loss == "ssvm":
            loss = batch.mean(ssvm_hinge(self.spec, self.value_map(context), y_a, y_true))
        elif self.primary_loss == "cd":
            binary = tf.cast(noise < y_a[:, tf.newaxis], tf.float32)
            samples = y_a[:, tf.newaxis] + tf.stop_gradient(binary - y_a[:, tf.newaxis])  # straight-through
            candidates = [y_true[:, tf.newaxis], samples]  # y* first
            if negatives is not None:
                candidates.append(negatives[:, tf.newaxis])
            candidates = tf.concat(candidates, axis=1)  # [B, k, L]
            k = self.cd_samples + 1 + (negatives is not None)
            size = tf.shape(candidates)[0]  # explicit sizes: a replica's batch may be empty
            flat = tf.reshape(candidates, tf.concat([[size * k], self.spec.output_shape], 0))
            # The context of each example repeated for its K + 1 candidates (no labels² tensors).
            scores = tf.reshape(self.value_net.score(tf.repeat(context, k, axis=0), flat), [size, k])
            loss = batch.mean(tf.reduce_logsumexp(scores, axis=1) - scores[:, 0])
        else:
            target = tf.stop_gradient(self.spec.oracle_fn(y_a, y_true))
            logits_a = self.value_net.score(context, y_a)
            logits_truth = self.value_net.score(context, y_true)
            loss = 0.5 * batch.mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits_a)
                + tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(logits_truth), logits=logits_truth))
        return loss + batch.penalty(self.value_net.losses)

    def optimizer_updates_at(self, optimizer_name: str, run_updates: int) -> int:
        """θ's optimizer takes inner_steps updates per training step."""
        return run_updates * (self.inner_steps if optimizer_name == "g_optimizer" else 1)

    def train_step(self, data):
        x, y_true = data[0], tf.cast(data[1], tf.float32)
        x = self.prepare_inputs(x)
        batch = self.global_batch(x)
        theta = self.inference_net.trainable_variables
        phi = self.value_net.trainable_variables

        # Inner problem: T_inner steps on θ with φ fixed. The optimizer sums the replicas'
        # shares, so every replica takes the global-batch step and θ stays identical.
        def inner_step(last_loss, last_cross_entropy):
            with tf.GradientTape() as tape:
                loss, cross_entropy = self.aux_loss(x, y_true, batch, training=True)
            self.g_optimizer.apply_gradients(zip(tape.gradient(loss, theta), theta))
            return loss, cross_entropy

        inner_loss, inner_cross_entropy = repeat(self.inner_steps, inner_step,
                                                 (tf.constant(0.0), tf.constant(0.0)))

        # Outer problem: φ along the implicit gradient at the current θ (its noise, for "cd",
        # drawn per replica from the sampling generator).
        noise = self.bernoulli_noise(x) if self.primary_loss == "cd" else None
        negatives = self.refined_negatives(x) if self.cd_refined_negatives else None
        gradient = implicit_gradient(lambda: self.aux_loss(x, y_true, batch)[0],
                                     lambda: self.primary(x, y_true, batch, noise, negatives), theta, phi,
                                     self.neumann_terms, self.neumann_step)
        outer_loss = self.primary(x, y_true, batch, noise, negatives)
        self.d_optimizer.apply_gradients(zip(gradient.total, phi))

        y_a = self.spec.output_probabilities(self.inference_net(x))
        # Norms are not sums of shares: those of the global gradients, tracked as equal shares.
        direct, implicit = sum_over_replicas((gradient.direct, gradient.implicit))
        self.track(loss=outer_loss, inner_loss=inner_loss, outer_loss=outer_loss,
                   inner_cross_entropy=inner_cross_entropy,
                   grad_norm_direct=_global_norm(direct) / batch.num_replicas,
                   grad_norm_implicit=_global_norm(implicit) / batch.num_replicas,
                   grad_norm_theta_primary=_global_norm(gradient.theta_gradient) / batch.num_replicas,
                   oracle_inference_net=batch.mean(self.spec.oracle_fn(y_a, y_true)))
        return self.train_results()
