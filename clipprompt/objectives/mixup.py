"""Class-wise mixup of CLIP image features.

DualPromptMI augments the (L2-normalised) image features ``v_i`` of a batch,
frozen CLIP's or those of a prompted image tower, by mixing each one with a
class prototype ``mu_k``, the normalised mean of the image features of class
``k``::

    lam_i ~ Beta(alpha, alpha)
    v~_i  = normalise(lam_i v_i + (1 - lam_i) mu_{k_i})

``AUG.MODE`` chooses the partner class ``k_i``:

``intra``
    ``k_i = y_i`` (the sample's own class prototype); the target stays
    ``onehot(y_i)``.
``inter``
    ``k_i`` uniform among the *other* classes seen so far; the target is
    ``lam_i onehot(y_i) + (1 - lam_i) onehot(k_i)``. A sample falls back to
    ``intra`` when no other class has been seen.

The text side is mixed the same way, ``t~_i = normalise(lam_i t_{y_i} +
(1 - lam_i) t_{k_i})``, giving the target of the visual-text MI term
(:class:`clipprompt.objectives.mi.CriticMI` over the pairs ``(v~_i, t~_i)``). Mixed
features are trained with :func:`soft_cross_entropy`.

This module needs torch only.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from clipprompt.errors import UserError

AUG_MODES = ("intra", "inter")


class ClassPrototypes(nn.Module):
    """Per-class running mean of image features.

    Buffers (saved in ``state_dict``, so checkpoints hold them):
    ``feature_sum`` (C x D, float32) and ``count`` (C, int64, samples seen
    per class). ``prototypes()`` returns ``normalise(feature_sum_c / count_c)``;
    a class never seen has a **zero** row and ``seen[c] == False``.
    :class:`ClassWiseMixup` never picks an unseen class as a partner.

    The mean accumulates over every :meth:`update` until :meth:`reset`; the
    owner decides when old features are stale. DualPromptMI computes its
    prototypes once before training when the image tower is frozen CLIP's
    (CoOp's context: features never change), and recomputes them from zero at
    every epoch start when vision prompts train (``ivlp`` with vision tokens,
    ``maple``: the features move with every step, so a sum kept across epochs
    would mix features of prompts that no longer exist); see
    ``DualPromptMICLIP.refresh_prototypes``.
    Loading a state dict whose buffers have another shape (e.g. a checkpoint
    trained on base classes loaded into a model built for new classes)
    adopts the checkpoint's shape instead of failing.
    """

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.register_buffer("feature_sum", torch.zeros(0, 0))
        self.register_buffer("count", torch.zeros(0, dtype=torch.long))
        self.reset(num_classes, dim)

    @classmethod
    def from_features(cls, features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> "ClassPrototypes":
        """Prototypes of a labelled feature set (e.g. the few-shot training set in one pass)."""
        if features.dim() != 2:
            raise ValueError(f"features must be (N x D), got shape {tuple(features.shape)}")
        prototypes = cls(num_classes, features.shape[1]).to(features.device)
        prototypes.update(features, labels)
        return prototypes

    @property
    def num_classes(self) -> int:
        return self.feature_sum.shape[0]

    @property
    def dim(self) -> int:
        return self.feature_sum.shape[1]

    def reset(self, num_classes: Optional[int] = None, dim: Optional[int] = None) -> None:
        """Forget all statistics; optionally change the number of classes or the feature size."""
        num_classes = self.num_classes if num_classes is None else num_classes
        dim = self.dim if dim is None else dim
        if num_classes <= 0 or dim <= 0:
            raise ValueError(f"prototypes need num_classes > 0 and dim > 0, got {num_classes} and {dim}")
        device = self.feature_sum.device
        self.feature_sum = torch.zeros(num_classes, dim, device=device)
        self.count = torch.zeros(num_classes, dtype=torch.long, device=device)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch of (N x D) features with their (N,) class labels to the running sums."""
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features must be (N x {self.dim}), got shape {tuple(features.shape)}")
        labels = labels.reshape(-1).long()
        if labels.numel() != features.shape[0]:
            raise ValueError(f"got {labels.numel()} labels for {features.shape[0]} features")
        if labels.numel() == 0:
            return
        if labels.min().item() < 0 or labels.max().item() >= self.num_classes:
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}), got range "
                f"[{labels.min().item()}, {labels.max().item()}]"
            )
        labels = labels.to(self.feature_sum.device)
        self.feature_sum.index_add_(0, labels, features.detach().to(self.feature_sum))
        self.count.index_add_(0, labels, torch.ones_like(labels))

    @property
    def seen(self) -> torch.Tensor:
        """(C,) bool mask of the classes with at least one feature."""
        return self.count > 0

    def prototypes(self) -> torch.Tensor:
        """(C x D) L2-normalised class means; zero rows for unseen classes."""
        means = self.feature_sum / self.count.clamp_min(1).unsqueeze(1).to(self.feature_sum)
        return F.normalize(means, dim=1)  # a zero row stays zero

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # adopt the checkpoint's (C x D) so loading across class sets does not fail
        for name in ("feature_sum", "count"):
            incoming = state_dict.get(prefix + name)
            current = getattr(self, name)
            if incoming is not None and incoming.shape != current.shape:
                setattr(self, name, torch.zeros(incoming.shape, dtype=current.dtype, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, dim={self.dim}"


def sample_gamma(concentration: float, shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gamma(concentration, 1) samples drawn from ``torch.randn``/``torch.rand`` only.

    Uses Marsaglia and Tsang's (2000) squeeze-rejection method, boosted by
    ``U^(1/a)`` for ``a < 1``, so that a ``torch.Generator`` makes the draw
    reproducible (``torch.distributions`` samplers take no generator). The
    samples live on the generator's device (CPU when ``generator`` is None).
    """
    if concentration <= 0:
        raise ValueError(f"gamma concentration must be positive, got {concentration}")
    device = generator.device if generator is not None else torch.device("cpu")
    numel = 1
    for size in shape:
        numel *= size
    boost = concentration < 1.0
    shape_param = concentration + 1.0 if boost else concentration
    d = shape_param - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    result = torch.empty(numel, dtype=torch.float64, device=device)
    pending = torch.arange(numel, device=device)
    while pending.numel() > 0:  # each round accepts > 95% of the pending draws
        x = torch.randn(pending.numel(), dtype=torch.float64, device=device, generator=generator)
        u = torch.rand(pending.numel(), dtype=torch.float64, device=device, generator=generator)
        v = (1.0 + c * x) ** 3
        log_v = torch.log(v.clamp_min(1e-300))
        accept = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * log_v)
        result[pending[accept]] = d * v[accept]
        pending = pending[~accept]
    if boost:
        u = torch.rand(numel, dtype=torch.float64, device=device, generator=generator)
        result = result * u.pow(1.0 / concentration)
    return result.reshape(tuple(shape))


def sample_beta(alpha: float, size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``size`` draws of Beta(alpha, alpha) as ``X / (X + Y)``, ``X, Y ~ Gamma(alpha)`` (float32, in [0, 1])."""
    gammas = sample_gamma(alpha, (2, size), generator=generator)
    total = gammas.sum(dim=0)
    # both gammas can underflow to 0 for tiny alpha; call that draw 1/2
    lam = torch.where(total > 0, gammas[0] / total.clamp_min(1e-300), torch.full_like(total, 0.5))
    return lam.float().clamp_(0.0, 1.0)


@dataclass
class MixupOutput:
    """What :class:`ClassWiseMixup` returns for a batch of B samples over C classes."""

    features: torch.Tensor  # (B x D) normalise(lam v_i + (1 - lam) mu_k), in the input dtype
    partner: torch.Tensor  # (B,) long, the partner class k_i
    lam: torch.Tensor  # (B,) float32 in [0, 1], weight of the sample's own feature
    targets: torch.Tensor  # (B x C) float32 soft targets, rows sum to one


class ClassWiseMixup(nn.Module):
    """Mix each image feature with a class prototype; see the module docstring for the equations.

    ``mode``: ``"intra"`` (partner = own class) or ``"inter"`` (partner =
    another seen class, uniformly). ``alpha`` > 0: ``lam ~ Beta(alpha, alpha)``
    (``alpha = 1`` is uniform; small ``alpha`` puts lam near 0 or 1).

    Randomness comes from ``generator`` when one is passed to ``forward``
    (reproducible), else from torch's global RNG (``torch.manual_seed``).
    The module has no parameters or buffers.
    """

    def __init__(self, mode: str = "intra", alpha: float = 1.0):
        super().__init__()
        if mode not in AUG_MODES:
            raise UserError(f"unknown AUG.MODE {mode!r}; choose one of {', '.join(AUG_MODES)}")
        if not alpha > 0:
            raise UserError(f"AUG.ALPHA must be positive (Beta(alpha, alpha)), got {alpha}")
        self.mode = mode
        self.alpha = float(alpha)

    def forward(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        prototypes: torch.Tensor,
        seen_mask: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> MixupOutput:
        """Mix a (B x D) batch with rows of the (C x D) ``prototypes``.

        ``seen_mask`` (C,) marks the usable prototypes; by default the non-zero
        rows (unseen classes of :class:`ClassPrototypes` are zero rows). A
        sample whose partner prototype is unseen (only possible in ``intra``
        mode, when its own class was never seen) keeps lam = 1, i.e. stays
        unmixed.
        """
        if features.dim() != 2 or prototypes.dim() != 2 or features.shape[1] != prototypes.shape[1]:
            raise ValueError(
                "features (B x D) and prototypes (C x D) must share D, got shapes "
                f"{tuple(features.shape)} and {tuple(prototypes.shape)}"
            )
        batch_size, num_classes = features.shape[0], prototypes.shape[0]
        device = features.device
        labels = labels.reshape(-1).long().to(device)
        if labels.numel() != batch_size:
            raise ValueError(f"got {labels.numel()} labels for {batch_size} features")
        if batch_size and (labels.min().item() < 0 or labels.max().item() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}) (rows of prototypes)")
        prototypes = prototypes.to(device=device, dtype=torch.float32)
        if seen_mask is None:
            seen_mask = prototypes.norm(dim=1) > 0
        seen_mask = seen_mask.to(device=device, dtype=torch.bool).reshape(-1)
        if seen_mask.numel() != num_classes:
            raise ValueError(f"seen_mask has {seen_mask.numel()} entries for {num_classes} prototypes")

        partner = labels.clone()
        if self.mode == "inter" and batch_size:
            partner = self._sample_other_seen_class(labels, seen_mask, generator)

        lam = sample_beta(self.alpha, batch_size, generator=generator).to(device)
        lam = torch.where(seen_mask[partner], lam, torch.ones_like(lam))

        weights = lam.unsqueeze(1)
        mixed = weights * features.float() + (1.0 - weights) * prototypes[partner]
        mixed = F.normalize(mixed, dim=1).to(features.dtype)

        own = F.one_hot(labels, num_classes).float()
        other = F.one_hot(partner, num_classes).float()
        targets = weights * own + (1.0 - weights) * other  # == own when partner == label
        return MixupOutput(features=mixed, partner=partner, lam=lam, targets=targets)

    @staticmethod
    def _sample_other_seen_class(
        labels: torch.Tensor, seen_mask: torch.Tensor, generator: Optional[torch.Generator]
    ) -> torch.Tensor:
        """k_i uniform over the seen classes != y_i; y_i itself where there is none."""
        batch_size, num_classes = labels.numel(), seen_mask.numel()
        candidates = seen_mask.float().unsqueeze(0).expand(batch_size, num_classes).clone()
        candidates[torch.arange(batch_size, device=labels.device), labels] = 0.0
        no_other = candidates.sum(dim=1) == 0
        candidates[no_other, labels[no_other]] = 1.0  # fall back to intra for these rows
        sample_device = generator.device if generator is not None else candidates.device
        partner = torch.multinomial(candidates.to(sample_device), 1, generator=generator).squeeze(1)
        return partner.to(labels.device)

    @staticmethod
    def mix_text(
        text_features: torch.Tensor, labels: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor
    ) -> torch.Tensor:
        """Mixed text targets ``normalise(lam_i t_{y_i} + (1 - lam_i) t_{k_i})`` (B x D).

        ``text_features`` is the (C x D) class text embedding (e.g. the soft
        prompts' ``t^s``); gradients flow back to it.
        """
        labels = labels.reshape(-1).long().to(text_features.device)
        partner = partner.reshape(-1).long().to(text_features.device)
        weights = lam.reshape(-1, 1).to(device=text_features.device, dtype=torch.float32)
        mixed = weights * text_features[labels].float() + (1.0 - weights) * text_features[partner].float()
        return F.normalize(mixed, dim=1).to(text_features.dtype)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, alpha={self.alpha}"


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets, ``mean_i [ -sum_c q_ic log softmax(z_i)_c ]``.

    Equals ``F.cross_entropy(logits, y)`` when ``targets`` is ``onehot(y)``.
    """
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits and soft targets must have the same (B x C) shape, got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}"
        )
    log_probs = F.log_softmax(logits.float(), dim=1)
    return -(targets.float() * log_probs).sum(dim=1).mean()
