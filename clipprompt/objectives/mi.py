"""Mutual-information estimators between the two text views of DualPromptMI.

DualPromptMI keeps CLIP frozen and describes every class ``c`` twice: a soft
prompt ``t_c^s`` (learnable CoOp context) and a hand-crafted prompt ``t_c^h``
(frozen). Image features are ``v_i``; all features are L2-normalised. Training
maximises the mutual information between the two views. Four ways to measure
it are provided here, selected by ``MI.MODE`` (default ``gaussian``, at a fixed
variance; ``DualPromptMIConfig`` in ``clipprompt/methods/dualprompt.py``):

``posterior``
    Each view classifies each image,
    ``p_i^s = softmax(s * v_i . t^s)`` and ``p_i^h = softmax(s * v_i . t^h)``,
    and the batch gives a joint distribution over (soft label, hand label)::

        P = 1/N sum_i p_i^s (p_i^h)^T            (C x C)
        P^s = sum_b P[:, b],   P^h = sum_a P[a, :]
        I(Y^s; Y^h) = sum_ab P_ab log(P_ab / (P^s_a P^h_b))

    as in Invariant Information Clustering (Ji et al., 2019). ``I`` is at most
    ``log C`` (and at most ``log N`` for a batch of N images); it is high when
    both views are confident, agree, and use many classes across the batch.

``critic``
    A variational lower bound on the MI between paired embeddings
    (``t_c^s``, ``t_c^h``) (or mixed image / mixed text features, see
    :mod:`clipprompt.objectives.mixup`), estimated through a learnable bilinear critic
    ``T(a, b) = <P_a a, P_b b> / tau`` and one of the InfoNCE, Jensen-Shannon
    or Donsker-Varadhan bounds over a score matrix whose diagonal holds the
    positive pairs.

``views_nce``
    A class-level InfoNCE between the views (LASP's text-to-text loss made
    symmetric). For every hand-crafted template ``k``, the scores
    ``S^k_cj = t_c^s . t_{k,j}^h / tau`` over the class set have the positives
    on the diagonal; every template's embedding of class ``c`` is a positive
    for ``c``::

        L = 1/(2K) sum_k [ CE_rows(S^k) + CE_cols(S^k) ]     (soft->hand, hand->soft)
        I_NCE = log C - L  <=  log C

    ``tau`` is fixed (``1/100``, CLIP's logit scale) or learnable in bounds.

``gaussian``
    A variational (Barber-Agakov) bound, MIRO-style:
    ``I(t^s; t^h) >= H(t^h) + E log q(t^h | t^s)`` with
    ``q = N(A t^s, diag sigma^2)`` over the sqrt(D)-scaled features (so that a
    unit vector has unit mean-square entries), ``A`` the identity or a
    learnable map initialised at the identity, ``sigma^2`` per dimension,
    fixed (the default) or learnable inside bounds. The value is ``E_c log q`` in nats per dimension
    (``H(t^h)`` is a constant of the frozen hand view)::

        -log q_c = 1/(2D) sum_d [ D (A t_c^s - t_c^h)_d^2 / sigma_d^2 + log sigma_d^2 + log 2 pi ]

    With ``sigma^2 = v`` fixed and ``A = I`` this is
    ``(1 - cos(t_c^s, t_c^h)) / v + (log v + log 2 pi) / 2``: KgCoOp's term
    (``W (1 - mean_c cos)``) with weight ``W / v`` plus a constant.

All estimators return values to *maximise* (use ``-weight * value`` in a loss).
Besides the standard library, this module imports torch and clipprompt.errors only (no clip, no Dassl).
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from clipprompt.errors import UserError

MI_MODES = ("posterior", "critic", "views_nce", "gaussian")
# modes whose term is computed over the C class embeddings (no image features)
CLASS_LEVEL_MODES = ("critic", "views_nce", "gaussian")
CRITIC_ESTIMATORS = ("infonce", "jsd", "dv")
# critic: the bound and the temperature a critic uses unless told otherwise
CRITIC_ESTIMATOR = "infonce"
CRITIC_TAU = 0.07

# Smallest probability fed to log(); entries below it contribute ~0 to the MI.
DEFAULT_EPS = 1e-8

# views_nce: 1 / CLIP's logit scale (exp(log 100)); a learnable tau stays inside these bounds.
CLIP_TAU = 0.01
NCE_TAU_BOUNDS = (0.005, 0.5)
# gaussian: per-dimension variance of q (in units of the sqrt(D)-scaled features) and its bounds.
GAUSS_VAR = 1.0
GAUSS_VAR_BOUNDS = (0.01, 10.0)


def _bounded_logit(value: float, low: float, high: float) -> float:
    """Inverse of ``low + (high - low) * sigmoid(x)``: the raw parameter for ``value``."""
    fraction = (value - low) / (high - low)
    return math.log(fraction / (1.0 - fraction))


def _log_bounded(raw: torch.Tensor, log_bounds: Tuple[float, float]) -> torch.Tensor:
    """``exp(log lo + (log hi - log lo) * sigmoid(raw))``: a positive value that never leaves (lo, hi)."""
    low, high = log_bounds
    return torch.exp(low + (high - low) * torch.sigmoid(raw))


def _check_bounds(name: str, value: float, bounds: Tuple[float, float]) -> None:
    low, high = bounds
    if not (0.0 < low < high):
        raise UserError(f"{name} bounds must satisfy 0 < low < high, got {tuple(bounds)}")
    if not (low < value < high):
        raise UserError(f"{name}={value} must lie strictly inside its bounds {tuple(bounds)}")


# ---------------------------------------------------------------------------
# posterior mode
# ---------------------------------------------------------------------------


def mutual_information_from_joint(joint: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Exact mutual information (nats) of a two-dimensional joint table.

    ``joint`` may be any non-negative (A x B) table; it is normalised to sum to
    one first. With ``P`` the normalised table and ``P^a``, ``P^b`` its row and
    column marginals::

        I = sum_ab P_ab * (log P_ab - log P^a_a - log P^b_b)

    Probabilities are clamped to ``eps`` inside the logarithms only, so empty
    cells contribute ``0 * finite = 0`` and gradients stay finite.
    """
    if joint.dim() != 2:
        raise ValueError(f"joint table must be 2-D (A x B), got shape {tuple(joint.shape)}")
    joint = joint.float()
    total = joint.sum()
    if not torch.isfinite(total) or total.item() <= 0:
        raise ValueError("joint table must be non-negative with a positive, finite sum")
    joint = joint / total
    marginal_rows = joint.sum(dim=1, keepdim=True)
    marginal_cols = joint.sum(dim=0, keepdim=True)
    log_ratio = (
        joint.clamp_min(eps).log()
        - marginal_rows.clamp_min(eps).log()
        - marginal_cols.clamp_min(eps).log()
    )
    return (joint * log_ratio).sum()


def posterior_joint(probs_a: torch.Tensor, probs_b: torch.Tensor) -> torch.Tensor:
    """Batch joint of two posteriors: ``P = 1/N sum_i p_i^a (p_i^b)^T`` (C_a x C_b)."""
    if probs_a.dim() != 2 or probs_b.dim() != 2 or probs_a.shape[0] != probs_b.shape[0]:
        raise ValueError(
            "posteriors must be (N x C) tensors over the same N images, got shapes "
            f"{tuple(probs_a.shape)} and {tuple(probs_b.shape)}"
        )
    return probs_a.t() @ probs_b / probs_a.shape[0]


def posterior_mutual_information(
    logits_a: torch.Tensor, logits_b: torch.Tensor, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """``I(Y^a; Y^b)`` (nats) of the batch joint of ``softmax(logits_a)`` and ``softmax(logits_b)``.

    ``logits_*`` are (N x C) class logits of the same N images under two views
    (for DualPromptMI: ``s * v . t^s`` and ``s * v . t^h``, ``s`` being CLIP's
    logit scale). Differentiable with respect to both. Computed in float32
    so that half-precision logits are safe. A batch of one image always gives
    0 (an outer product has no dependence).
    """
    probs_a = logits_a.float().softmax(dim=1)
    probs_b = logits_b.float().softmax(dim=1)
    return mutual_information_from_joint(posterior_joint(probs_a, probs_b), eps=eps)


class PosteriorMI(nn.Module):
    """``posterior`` mode: the IIC mutual information between two class posteriors.

    ``forward(logits_soft, logits_hand)`` returns
    ``I = posterior_mutual_information(g * logits_soft, g * logits_hand)`` in nats,
    where ``g`` is a scalar multiplier on the logits (an inverse temperature).

    By default ``g = 1`` (the logits are used as given). With
    ``learn_temperature=True``, ``g`` is learnable but kept inside
    ``scale_bounds`` through ``g = exp(log lo + (log hi - log lo) * sigmoid(r))``:
    maximising MI alone always favours sharper posteriors, so an unbounded
    ``g`` would run off to infinity.
    """

    input_kind = "logits"  # what forward() expects: (N x C) class logits per view

    def __init__(
        self,
        learn_temperature: bool = False,
        init_scale: float = 1.0,
        scale_bounds: Tuple[float, float] = (0.1, 10.0),
        eps: float = DEFAULT_EPS,
    ):
        super().__init__()
        self.eps = eps
        self.learn_temperature = learn_temperature
        if learn_temperature:
            _check_bounds("MI logit scale", init_scale, scale_bounds)
            self.log_scale_bounds = (math.log(scale_bounds[0]), math.log(scale_bounds[1]))
            raw = _bounded_logit(math.log(init_scale), *self.log_scale_bounds)
            self.raw_scale = nn.Parameter(torch.tensor(raw))
        else:
            if init_scale <= 0:
                raise UserError(f"MI logit scale must be positive, got {init_scale}")
            self.register_buffer("fixed_scale", torch.tensor(float(init_scale)), persistent=False)

    @property
    def scale(self) -> torch.Tensor:
        """The current logit multiplier ``g`` (a 0-d tensor)."""
        if not self.learn_temperature:
            return self.fixed_scale
        low, high = self.log_scale_bounds
        return torch.exp(low + (high - low) * torch.sigmoid(self.raw_scale))

    def forward(self, logits_soft: torch.Tensor, logits_hand: torch.Tensor) -> torch.Tensor:
        scale = self.scale
        return posterior_mutual_information(
            logits_soft.float() * scale, logits_hand.float() * scale, eps=self.eps
        )

    def extra_repr(self) -> str:
        return f"learn_temperature={self.learn_temperature}, scale={self.scale.item():.4g}"


# ---------------------------------------------------------------------------
# critic mode
# ---------------------------------------------------------------------------


class BilinearCritic(nn.Module):
    """Learnable critic ``T(a, b) = <P_a a, P_b b> / tau``; ``critic(a, b)`` is the N x M score matrix.

    ``P_a`` (``weight_a``, proj_dim x dim_a) and ``P_b`` (``weight_b``,
    proj_dim x dim_b) are linear maps without bias; ``proj_dim`` defaults to
    ``min(dim_a, dim_b)``. They start as the rectangular identity (``torch.nn.init.eye_``): the identity when
    ``dim_a == dim_b == proj_dim``, otherwise a map that keeps the first
    ``min(proj_dim, dim)`` coordinates and pads with zeros. At initialisation
    and for unit-norm inputs the critic is therefore CLIP's own similarity
    ``cos(a, b) / tau``.

    ``normalize=True`` (default) L2-normalises ``P_a a`` and ``P_b b`` before
    the inner product, so every score lies in ``[-1/tau, 1/tau]``: without
    it the critic could raise any bound just by growing the norms of its
    projections, without the inputs changing. ``learn_projection=False``
    freezes ``P_a``, ``P_b`` as (non-saved) buffers: the critic is then plain
    scaled cosine and has no parameters unless ``tau`` is learnt.

    ``tau`` is fixed by default. With ``learn_tau=True`` it is learnable but
    confined to ``tau_bounds`` via ``tau = lo + (hi - lo) * sigmoid(r)``, so
    the critic cannot sharpen without limit.
    """

    def __init__(
        self,
        dim_a: int,
        dim_b: int,
        proj_dim: Optional[int] = None,
        tau: float = CRITIC_TAU,
        learn_tau: bool = False,
        tau_bounds: Tuple[float, float] = (0.01, 1.0),
        normalize: bool = True,
        learn_projection: bool = True,
    ):
        super().__init__()
        if proj_dim is None:
            proj_dim = min(dim_a, dim_b)
        if min(dim_a, dim_b, proj_dim) <= 0:
            raise UserError(
                f"critic dimensions must be positive, got dim_a={dim_a}, dim_b={dim_b}, proj_dim={proj_dim}"
            )
        self.dim_a, self.dim_b, self.proj_dim = dim_a, dim_b, proj_dim
        self.normalize = normalize
        self.learn_tau = learn_tau
        # rectangular identity: the identity when the dims agree
        weight_a = nn.init.eye_(torch.empty(proj_dim, dim_a))
        weight_b = nn.init.eye_(torch.empty(proj_dim, dim_b))
        self.learn_projection = learn_projection
        if learn_projection:
            self.weight_a = nn.Parameter(weight_a)
            self.weight_b = nn.Parameter(weight_b)
        else:  # frozen: buffers, so optimisers built from parameters() never see them
            self.register_buffer("weight_a", weight_a, persistent=False)
            self.register_buffer("weight_b", weight_b, persistent=False)

        if learn_tau:
            _check_bounds("MI critic tau", tau, tau_bounds)
            self.tau_bounds = (float(tau_bounds[0]), float(tau_bounds[1]))
            self.raw_tau = nn.Parameter(torch.tensor(_bounded_logit(tau, *self.tau_bounds)))
        else:
            if tau <= 0:
                raise UserError(f"MI critic tau must be positive, got {tau}")
            self.register_buffer("fixed_tau", torch.tensor(float(tau)), persistent=False)

    @property
    def tau(self) -> torch.Tensor:
        """The current temperature (a 0-d tensor)."""
        if not self.learn_tau:
            return self.fixed_tau
        low, high = self.tau_bounds
        return low + (high - low) * torch.sigmoid(self.raw_tau)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dim() != 2 or a.shape[1] != self.dim_a or b.dim() != 2 or b.shape[1] != self.dim_b:
            raise ValueError(
                f"critic expects (N x {self.dim_a}) and (M x {self.dim_b}) inputs, got shapes "
                f"{tuple(a.shape)} and {tuple(b.shape)}"
            )
        # scores in float32 so that fp16 CLIP features do not lose the 1/tau-scaled scores
        proj_a = F.linear(a.to(self.weight_a.dtype), self.weight_a).float()
        proj_b = F.linear(b.to(self.weight_b.dtype), self.weight_b).float()
        if self.normalize:
            proj_a = F.normalize(proj_a, dim=1)
            proj_b = F.normalize(proj_b, dim=1)
        return proj_a @ proj_b.t() / self.tau

    def extra_repr(self) -> str:
        return f"normalize={self.normalize}, learn_tau={self.learn_tau}, tau={self.tau.item():.4g}"


def _check_square(scores: torch.Tensor) -> int:
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(
            f"score matrix must be square (N x N, positives on the diagonal), got shape {tuple(scores.shape)}"
        )
    return scores.shape[0]


def _off_diagonal(scores: torch.Tensor) -> torch.Tensor:
    """The N*(N-1) negative-pair scores of a square matrix, flattened."""
    n = scores.shape[0]
    mask = ~torch.eye(n, dtype=torch.bool, device=scores.device)
    return scores[mask]


def infonce_bound(scores: torch.Tensor, symmetric: bool = False) -> torch.Tensor:
    """InfoNCE lower bound (van den Oord et al., 2018) over an N x N score matrix.

    ``I_NCE = 1/N sum_i [ T_ii - logsumexp_j T_ij ] + log N``, at most ``log N``.
    ``symmetric=True`` averages this with the column-wise version (``b -> a``),
    as CLIP's contrastive loss does. A single pair (N = 1) gives 0.
    """
    n = _check_square(scores)
    scores = scores.float()
    diagonal = scores.diagonal()
    rows = (diagonal - scores.logsumexp(dim=1)).mean()
    if symmetric:
        cols = (diagonal - scores.logsumexp(dim=0)).mean()
        rows = 0.5 * (rows + cols)
    return rows + math.log(n)


def jsd_bound(scores: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon (f-GAN / Deep InfoMax) bound over an N x N score matrix.

    ``I_JSD = E_pos[-softplus(-T)] - E_neg[softplus(T)]`` with positives the
    diagonal and negatives the N(N-1) off-diagonal pairs. It is at most 0 and
    estimates ``2 JSD(p(a,b) || p(a)p(b)) - log 4`` rather than the MI in
    nats, but rises monotonically with dependence and gives well-behaved
    gradients. Without negatives (N = 1) it returns 0.
    """
    n = _check_square(scores)
    if n < 2:
        return scores.sum() * 0.0
    scores = scores.float()
    positive = -F.softplus(-scores.diagonal()).mean()
    negative = F.softplus(_off_diagonal(scores)).mean()
    return positive - negative


def dv_bound(scores: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan (MINE) bound over an N x N score matrix.

    ``I_DV = E_pos[T] - log E_neg[exp T]``, the second term computed as
    ``logsumexp(T_neg) - log(N(N-1))`` for stability. A tight but
    high-variance estimate in nats. Without negatives (N = 1) it returns 0.
    """
    n = _check_square(scores)
    if n < 2:
        return scores.sum() * 0.0
    scores = scores.float()
    negatives = _off_diagonal(scores)
    log_mean_exp = negatives.logsumexp(dim=0) - math.log(negatives.numel())
    return scores.diagonal().mean() - log_mean_exp


_BOUNDS = {"infonce": infonce_bound, "jsd": jsd_bound, "dv": dv_bound}


class CriticMI(nn.Module):
    """``critic`` mode: ``bound(T(a_i, b_j))`` with a :class:`BilinearCritic` ``T``.

    ``forward(a, b)`` takes two (N x D) batches whose rows are paired (row i
    of ``a`` goes with row i of ``b``; every other row is a negative) and
    returns the chosen lower bound, a scalar to maximise. Two uses:

    * class-embedding view MI: ``a = t^s`` (C x D), ``b = t^h`` (C x D);
    * visual-text MI of the augmentation: ``a`` = mixed image features,
      ``b`` = mixed text targets (B x D, see :mod:`clipprompt.objectives.mixup`).

    ``estimator`` is one of ``"infonce"`` (default), ``"jsd"``, ``"dv"``.
    The remaining keyword arguments go to :class:`BilinearCritic`.

    Caution: a critic with learnable projections (the default here) is a
    proper MI estimator when the pairs are fresh samples at every step. On a
    fixed set of pairs (the C class embeddings) it can fit any pairing and
    reach ``log C`` on its own; pass ``learn_projection=False`` there, as
    :func:`build_view_mi` does.
    """

    input_kind = "embeddings"  # what forward() expects: paired (N x D) feature rows

    def __init__(self, dim_a: int, dim_b: Optional[int] = None, estimator: str = CRITIC_ESTIMATOR, **critic_kwargs):
        super().__init__()
        if estimator not in _BOUNDS:
            raise UserError(
                f"unknown MI estimator {estimator!r} (MI.ESTIMATOR); choose one of {', '.join(CRITIC_ESTIMATORS)}"
            )
        self.estimator = estimator
        self.critic = BilinearCritic(dim_a, dim_a if dim_b is None else dim_b, **critic_kwargs)

    def scores(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The N x N critic score matrix (positives on the diagonal)."""
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"paired batches must have the same length, got {a.shape[0]} and {b.shape[0]}")
        return self.critic(a, b)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _BOUNDS[self.estimator](self.scores(a, b))

    def extra_repr(self) -> str:
        return f"estimator={self.estimator!r}"


# ---------------------------------------------------------------------------
# views_nce mode
# ---------------------------------------------------------------------------


def _as_template_stack(hand: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """The hand view as (K x C x D): a single (C x D) view is one template."""
    if hand.dim() == 2:
        hand = hand.unsqueeze(0)
    if soft.dim() != 2 or hand.dim() != 3 or hand.shape[1:] != soft.shape:
        raise ValueError(
            "views must be soft (C x D) and hand (C x D) or (K x C x D) over the same classes, got shapes "
            f"{tuple(soft.shape)} and {tuple(hand.shape)}"
        )
    return hand


class ViewsNCE(nn.Module):
    """``views_nce`` mode: symmetric class-level InfoNCE between the soft and hand views.

    ``forward(soft, hand)``: ``soft`` (C x D) soft-view class embeddings,
    ``hand`` (C x D) or (K x C x D), one (C x D) slice per hand-crafted
    template (each template's embedding of class c is a positive for c).
    Returns ``log C - L`` (nats, at most ``log C``), ``L`` the mean over
    templates of the two cross-entropies of ``S^k = soft @ hand_k^T / tau``:
    rows (each soft class picks its class among the template's hand
    embeddings) and columns (each hand embedding picks its class among the
    soft ones, LASP's direction). Inputs are expected L2-normalised (CLIP
    features); scores are computed in float32.

    ``tau`` defaults to ``CLIP_TAU`` (1/100, CLIP's logit scale). With
    ``learn_tau=True`` it is learnable in log space inside ``tau_bounds``.
    A learnable tau alone cannot raise the bound on unrelated embeddings:
    it only rescales scores whose diagonal is not larger than the rest.
    """

    input_kind = "embeddings"

    def __init__(self, tau: float = CLIP_TAU, learn_tau: bool = False,
                 tau_bounds: Tuple[float, float] = NCE_TAU_BOUNDS):
        super().__init__()
        self.learn_tau = learn_tau
        if learn_tau:
            _check_bounds("views_nce tau", tau, tau_bounds)
            self.log_tau_bounds = (math.log(tau_bounds[0]), math.log(tau_bounds[1]))
            self.raw_tau = nn.Parameter(torch.tensor(_bounded_logit(math.log(tau), *self.log_tau_bounds)))
        else:
            if tau <= 0:
                raise UserError(f"views_nce tau must be positive, got {tau}")
            self.register_buffer("fixed_tau", torch.tensor(float(tau)), persistent=False)

    @property
    def tau(self) -> torch.Tensor:
        """The current temperature (a 0-d tensor)."""
        return _log_bounded(self.raw_tau, self.log_tau_bounds) if self.learn_tau else self.fixed_tau

    def scores(self, soft: torch.Tensor, hand: torch.Tensor) -> torch.Tensor:
        """(K x C x C) scores ``S[k, c, j] = <t_c^s, t_{k,j}^h> / tau``."""
        hand = _as_template_stack(hand, soft)
        return soft.float().unsqueeze(0) @ hand.float().transpose(1, 2) / self.tau

    def forward(self, soft: torch.Tensor, hand: torch.Tensor) -> torch.Tensor:
        scores = self.scores(soft, hand)
        positives = scores.diagonal(dim1=1, dim2=2)  # (K x C)
        soft_to_hand = (positives - scores.logsumexp(dim=2)).mean()
        hand_to_soft = (positives - scores.logsumexp(dim=1)).mean()
        return math.log(scores.shape[1]) + 0.5 * (soft_to_hand + hand_to_soft)

    def extra_repr(self) -> str:
        return f"learn_tau={self.learn_tau}, tau={self.tau.item():.4g}"


# ---------------------------------------------------------------------------
# gaussian mode
# ---------------------------------------------------------------------------


class GaussianMI(nn.Module):
    """``gaussian`` mode: mean log-likelihood of ``q(t^h | t^s) = N(A t^s, diag sigma^2)`` (MIRO).

    ``forward(soft, hand)`` with (C x D) views returns ``mean_c log q_c``
    in nats per dimension (equations in the module docstring): the part of
    the bound ``I >= H(t^h) + E log q`` that depends on the prompts; its
    largest value, ``-(log sigma_min^2 + log 2 pi) / 2``, needs identical
    views and the variance at its lower bound. :meth:`nll` gives the
    per-class negative log-likelihood.

    Features are scaled by sqrt(D) inside, so per-dimension residuals of unit
    vectors are O(1) and ``var_bounds`` mean the same at any width.
    ``var`` is the fixed variance (the default, as ``MI.GAUSS_LEARN_VAR``), or
    with ``learn_var=True`` the initial one; a learnable one is kept inside ``var_bounds`` in log space (unbounded, it
    would shrink to the residuals and blow the term up as the views align).
    ``learn_map=True`` makes ``A`` a learnable D x D map initialised at the
    identity; on a fixed set of C <= D pairs it can map any soft embedding
    onto any hand embedding by itself (tested), so it is off by default.

    The value is a mean over dimensions (so that ``MI.WEIGHT`` has KgCoOp's
    scale), which divides each dimension's variance gradient by D: under SGD
    at a prompt's learning rate the variance would hardly move (MIRO gives it
    its own learning rate). ``raw_var`` therefore stores the raw variance
    divided by sqrt(D): each dimension's variance then takes the SGD steps
    it would take under the summed, D-dimensional log-likelihood.
    """

    input_kind = "embeddings"

    def __init__(self, dim: int, var: float = GAUSS_VAR, learn_var: bool = False,
                 var_bounds: Tuple[float, float] = GAUSS_VAR_BOUNDS, learn_map: bool = False):
        super().__init__()
        if dim <= 0:
            raise UserError(f"gaussian MI dimension must be positive, got {dim}")
        self.dim, self.learn_var, self.learn_map = dim, learn_var, learn_map
        if learn_var:
            _check_bounds("gaussian MI variance", var, var_bounds)
            self.log_var_bounds = (math.log(var_bounds[0]), math.log(var_bounds[1]))
            raw = _bounded_logit(math.log(var), *self.log_var_bounds)
            self.raw_var = nn.Parameter(torch.full((dim,), raw / math.sqrt(dim)))
        else:
            if var <= 0:
                raise UserError(f"gaussian MI variance must be positive, got {var}")
            self.register_buffer("fixed_var", torch.full((dim,), float(var)), persistent=False)
        self.map = nn.Parameter(torch.eye(dim)) if learn_map else None

    @property
    def variance(self) -> torch.Tensor:
        """(D,) per-dimension variance of q."""
        if not self.learn_var:
            return self.fixed_var
        return _log_bounded(self.raw_var * math.sqrt(self.dim), self.log_var_bounds)

    def nll(self, soft: torch.Tensor, hand: torch.Tensor) -> torch.Tensor:
        """(C,) ``-log q(t_c^h | t_c^s)`` per class, nats per dimension."""
        if soft.dim() != 2 or soft.shape != hand.shape or soft.shape[1] != self.dim:
            raise ValueError(
                f"gaussian MI expects two (C x {self.dim}) views, got shapes {tuple(soft.shape)} and {tuple(hand.shape)}"
            )
        mean = soft.float() if self.map is None else F.linear(soft.float(), self.map)
        residual = self.dim * (mean - hand.float()).pow(2)  # squared sqrt(D)-scaled residual
        variance = self.variance
        return 0.5 * (residual / variance + variance.log() + math.log(2 * math.pi)).mean(dim=1)

    def forward(self, soft: torch.Tensor, hand: torch.Tensor) -> torch.Tensor:
        return -self.nll(soft, hand).mean()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, learn_var={self.learn_var}, learn_map={self.learn_map}"


def build_view_mi(
    mode: str,
    dim: int,
    estimator: str = CRITIC_ESTIMATOR,
    tau: float = CRITIC_TAU,
    learn_tau: bool = False,
    learn_temperature: bool = False,
    learn_projection: bool = False,
    nce_tau: float = CLIP_TAU,
    nce_learn_tau: bool = False,
    gauss_var: float = GAUSS_VAR,
    gauss_learn_var: bool = False,
    gauss_var_bounds: Tuple[float, float] = GAUSS_VAR_BOUNDS,
    gauss_learn_map: bool = False,
) -> nn.Module:
    """The view-MI module for ``MI.MODE``; each uses only its own arguments.

    The numeric defaults are this module's constants (``CRITIC_TAU``, ``CLIP_TAU``, ``GAUSS_VAR``, ...),
    which ``DualPromptMIConfig`` (``TRAINER.DUALPROMPTMI.MI``) uses too; tests/test_dualprompt.py checks
    that the two agree (argument ``x`` is the key ``MI.X``).

    ``"posterior"`` -> :class:`PosteriorMI` (``forward(logits_soft, logits_hand)``;
    ``learn_temperature``).
    ``"critic"`` -> :class:`CriticMI` over ``dim``-dimensional class embeddings
    (``forward(t_soft, t_hand)``; ``estimator``, ``tau``, ``learn_tau``,
    ``learn_projection``).
    ``"views_nce"`` -> :class:`ViewsNCE` (``forward(t_soft, t_hand_per_template)``;
    ``nce_tau``, ``nce_learn_tau``).
    ``"gaussian"`` -> :class:`GaussianMI` (``forward(t_soft, t_hand)``; ``gauss_*``).
    Every module carries ``input_kind`` (``"logits"`` or ``"embeddings"``).

    ``learn_projection`` is off by default here because the class-embedding
    bound is evaluated on the same C pairs at every step: a critic with
    learnable projections can fit any C pairs and push the bound to
    ``log C`` on its own, even for unrelated embeddings, and then the term
    no longer constrains the soft prompts. With frozen (identity)
    projections the term is a CLIP-style contrastive alignment of ``t^s``
    with ``t^h`` at temperature ``tau``. The same holds for ``gauss_learn_map``.
    """
    if mode == "posterior":
        return PosteriorMI(learn_temperature=learn_temperature)
    if mode == "critic":
        return CriticMI(
            dim, dim, estimator=estimator, tau=tau, learn_tau=learn_tau, learn_projection=learn_projection
        )
    if mode == "views_nce":
        return ViewsNCE(tau=nce_tau, learn_tau=nce_learn_tau)
    if mode == "gaussian":
        return GaussianMI(dim, var=gauss_var, learn_var=gauss_learn_var, var_bounds=tuple(gauss_var_bounds),
                          learn_map=gauss_learn_map)
    raise UserError(f"unknown MI.MODE {mode!r}; choose one of {', '.join(MI_MODES)}")
