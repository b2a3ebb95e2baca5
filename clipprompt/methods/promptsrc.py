"""PromptSRC (Khattak et al., ICCV 2023): IVLP prompts regularised towards frozen CLIP.

For prompted features (text ``t``, image ``v``), frozen ones (``t^0``: the hand-crafted
prompt ensemble, encoded once per class set, as the official code does by default: the templates'
unnormalised features averaged, then normalised, ``TEACHER_ENSEMBLE raw``; ``v^0``: the same image
tower with the prompts off) and logit scale ``s``, over a batch of B images and C classes:

    L = CE(s v.t, y) + W_text * L1(t, t^0) + W_image * L1(v, v^0)
        + W_kl * KL(softmax(s v^0.t^0) || softmax(s v.t)) / (B * C)

L1 is the mean absolute difference over the elements of the unit vectors, and the KL is summed
over the batch and the classes and divided by the number of logits (B * C), as in the official code. The frozen text features cost nothing
per step; the frozen image features are one extra forward pass of the image tower, without a
graph (the official code keeps a second copy of the tower for it; the same frozen modules
with the prompts removed give the same features).

**Gaussian prompt aggregation** (GPA): after epoch e = 1..E the prompt learner's parameters
are added to a running sum with weight ``w_e = N(e; mean, std) / sum_k N(k; mean, std)``;
after the last epoch the prompts are replaced by the sum, so the final evaluation and the
last checkpoint use the aggregate. Only the prompt learner is aggregated (the official code
sums the whole state dict, frozen CLIP included). The sums are buffers of the model, saved
with every checkpoint, so a resumed run continues the same aggregate.

The pieces (:func:`encode_teacher_text`, :class:`SelfRegulation`, :class:`GaussianPromptAggregate`)
are PromptSRC's one definition: DualPromptMI over ``PROMPT_LEARNER promptsrc`` composes the same
ones, so a change here reaches both (``tests/test_dualprompt_promptsrc.py`` holds them equal).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clipprompt.errors import UserError
from clipprompt.methods.maple import DeepPromptCLIP
from clipprompt.methods.options import Options, option
from clipprompt.methods.registry import Method, register
from clipprompt.objectives.consistency import consistency_terms
from clipprompt.prompts.hand import ENSEMBLE_RULES, encode_hand_crafted


KEY = "TRAINER.PROMPTSRC."


def gaussian_epoch_weights(max_epoch, mean, std, key=KEY):
    """``w_e`` for e = 1..max_epoch: the N(mean, std) density at each epoch, normalised to sum 1.
    ``key``: the prefix of the GPA keys the errors name."""
    if max_epoch < 1:
        raise UserError(f"Gaussian prompt aggregation needs at least one epoch, got {max_epoch}")
    if not std > 0:
        raise UserError(f"{key}GPA_STD must be positive, got {std}")
    density = [math.exp(-0.5 * ((e - mean) / std) ** 2) for e in range(1, max_epoch + 1)]
    total = sum(density)
    if total == 0.0:  # a mean far outside 1..E underflows every density
        raise UserError(f"{key}GPA_MEAN {mean} with GPA_STD {std} gives no weight to epochs "
                        f"1..{max_epoch}; set GPA_MEAN inside the schedule")
    return [d / total for d in density]


def encode_teacher_text(backbone, classnames, templates, ensemble="raw"):
    """PromptSRC's frozen text teacher ``t^0``, (C, D): its template ensemble, encoded once per class
    set. How PromptSRC ensembles its templates is decided here only: ``ensemble`` ``raw`` (the
    default, as the official code: the unnormalised features averaged) or ``unit`` (CLIP's rule)."""
    return encode_hand_crafted(backbone, classnames, templates, ensemble=ensemble)


def check_teacher_ensemble(ensemble, key=KEY):
    """A one-line error naming ``key + "TEACHER_ENSEMBLE"`` unless ``ensemble`` is a known rule."""
    if ensemble not in ENSEMBLE_RULES:
        raise UserError(f"{key}TEACHER_ENSEMBLE must be one of {', '.join(ENSEMBLE_RULES)}, got {ensemble!r}")


@dataclass(frozen=True)
class SelfRegulation:
    """PromptSRC's three consistency terms with frozen CLIP, and their weights (``key``: the prefix of
    the weight keys the errors name)."""

    text_weight: float = 25.0
    image_weight: float = 10.0
    kl_weight: float = 1.0
    key: str = KEY

    def __post_init__(self):
        for name, value in (("TEXT_LOSS_WEIGHT", self.text_weight), ("IMAGE_LOSS_WEIGHT", self.image_weight),
                            ("KL_LOSS_WEIGHT", self.kl_weight)):
            if value < 0:
                raise UserError(f"{self.key}{name} must be >= 0, got {value}")

    @property
    def active(self):
        return self.text_weight > 0 or self.image_weight > 0 or self.kl_weight > 0

    def add_to(self, loss, model, text, teacher_text, image_features, frozen_image, logits, terms):
        """``loss`` plus the weighted terms, added left to right in PromptSRC's order (the order fixes
        the loss's last bits); each term is logged in ``terms``. ``model`` gives the logits."""
        zero_shot = model.logits(frozen_image, teacher_text)
        text_l1, image_l1, kl = consistency_terms(text, teacher_text, image_features, frozen_image, logits, zero_shot)
        terms.update(l1_text=text_l1.detach(), l1_image=image_l1.detach(), kl=kl.detach())
        return loss + self.text_weight * text_l1 + self.image_weight * image_l1 + self.kl_weight * kl


class GaussianPromptAggregate(nn.Module):
    """Weighted running sum of a module's parameters over epochs (buffers: saved, resumed)."""

    def __init__(self, module, max_epoch, mean, std, key=KEY):
        super().__init__()
        self.weights = gaussian_epoch_weights(max_epoch, mean, std, key)
        self.names = [name for name, _ in module.named_parameters()]
        for index, (_, param) in enumerate(module.named_parameters()):
            self.register_buffer(f"sum_{index}", torch.zeros_like(param, dtype=torch.float32))
        self.register_buffer("epochs_added", torch.zeros((), dtype=torch.long))

    def sums(self):
        return [getattr(self, f"sum_{i}") for i in range(len(self.names))]

    @torch.no_grad()
    def add(self, module, epoch):
        """Add ``module``'s parameters after (1-based) ``epoch``; each epoch is added once."""
        if epoch != int(self.epochs_added) + 1:
            raise RuntimeError(f"Gaussian prompt aggregation: epoch {epoch} added after {int(self.epochs_added)}")
        weight = self.weights[epoch - 1]
        for total, (_, param) in zip(self.sums(), module.named_parameters(), strict=True):
            total.add_(param.detach().float(), alpha=weight)
        self.epochs_added.fill_(epoch)

    @property
    def complete(self):
        return int(self.epochs_added) == len(self.weights)

    @torch.no_grad()
    def load_into(self, module):
        """Replace ``module``'s parameters by the aggregate (after every epoch has been added)."""
        if not self.complete:
            raise RuntimeError(f"Gaussian prompt aggregation: {int(self.epochs_added)} of {len(self.weights)} epochs added")
        for total, (_, param) in zip(self.sums(), module.named_parameters(), strict=True):
            param.copy_(total.to(param.dtype))

    def end_epoch(self, module, epoch):
        """After (1-based) ``epoch``: add ``module``'s parameters; after the last epoch, load the aggregate
        into it (so the last checkpoint and the final test use it) and return the line that says so."""
        self.add(module, epoch)
        if not self.complete:
            return None
        self.load_into(module)
        return f"Gaussian prompt aggregation: the prompts are the weighted mean over {len(self.weights)} epochs"


class PromptSRCCLIP(DeepPromptCLIP):
    """IVLP prompts, PromptSRC's self-regularisation and (``gpa``) its prompt aggregation.

    With all three weights 0 and ``gpa=None`` it trains and predicts exactly as IVLP.
    """

    def __init__(self, backbone, classnames, teacher_templates, text_weight=25.0, image_weight=10.0,
                 kl_weight=1.0, gpa=None, teacher_ensemble="raw", **prompt):
        super().__init__(backbone, classnames, coupled=False, **prompt)
        self.regulation = SelfRegulation(float(text_weight), float(image_weight), float(kl_weight))
        self.register_buffer("teacher_text", encode_teacher_text(self.backbone, classnames, teacher_templates,
                                                                 teacher_ensemble), persistent=False)
        # gpa: (max_epoch, mean, std) or None
        self.aggregate = GaussianPromptAggregate(self.prompt_learner, *gpa) if gpa is not None else None

    @property
    def regularised(self):
        return self.regulation.active

    def loss(self, image, labels):
        text = self.compute_text_features()
        image_features = self.encode_image(image)
        logits = self.logits(image_features, text)
        ce = F.cross_entropy(logits, labels)
        terms = {"ce": ce.detach()}
        if not self.regularised:
            return ce, logits, terms
        loss = self.regulation.add_to(ce, self, text, self.teacher_text, image_features,
                                      self.encode_image_frozen(image), logits, terms)
        return loss, logits, terms

    def end_epoch(self, run):
        """After each epoch: add the prompts to the aggregate; after the last one, load it."""
        if self.aggregate is None:
            return None
        return self.aggregate.end_epoch(self.prompt_learner, run.epoch + 1)


@dataclass
class PromptSRCOptions(Options):
    """Defaults: the paper's published base-to-new ViT-B/16 setting (docs/methods.md)."""

    n_ctx_text: int = option(4, "N_CTX_TEXT", "learnt text tokens per layer")
    ctx_init: str = option("a photo of a", "CTX_INIT", "initialisation of the text prompt")
    prompt_depth_text: int = option(9, "PROMPT_DEPTH_TEXT", "text layers with prompts, the input layer included")
    n_ctx_vision: int = option(4, "N_CTX_VISION", "0: no vision prompts (the image tower stays frozen CLIP's)")
    prompt_depth_vision: int = option(9, "PROMPT_DEPTH_VISION", "image layers with prompts")
    text_loss_weight: float = option(25.0, "TEXT_LOSS_WEIGHT", "L1 between prompted and frozen (ensemble) text features")
    image_loss_weight: float = option(10.0, "IMAGE_LOSS_WEIGHT", "L1 between prompted and frozen image features")
    kl_loss_weight: float = option(1.0, "KL_LOSS_WEIGHT", "KL(zero-shot || prompted) on the logits")
    gpa: bool = option(True, "GPA", "Gaussian prompt aggregation over epochs")
    gpa_mean: float = option(15.0, "GPA_MEAN", "in epochs (1-based)")
    gpa_std: float = option(1.0, "GPA_STD", "in epochs")
    hand_templates: list = option(["promptsrc_ensemble"], "HAND_TEMPLATES",
                                  "the frozen text teacher's prompts (PromptSRC's 60 ImageNet templates)")
    teacher_ensemble: str = option("raw", "TEACHER_ENSEMBLE",
                                   "raw: average the templates' unnormalised features, as the official code; "
                                   "unit: CLIP's prompt ensembling (normalise each first)")

    def validate(self, prefix=""):
        super().validate(prefix)
        check_teacher_ensemble(self.teacher_ensemble, prefix)
        return self

    def prompt_depths(self):
        depths = [("PROMPT_DEPTH_TEXT", "text", self.prompt_depth_text)]
        if self.n_ctx_vision > 0:
            depths.append(("PROMPT_DEPTH_VISION", "image", self.prompt_depth_vision))
        return depths


def build(backbone, classnames, o, context):
    templates = context.templates(o.hand_templates, "Frozen text teacher")
    gpa = (context.max_epoch, o.gpa_mean, o.gpa_std) if o.gpa else None
    return PromptSRCCLIP(
        backbone, classnames, templates, text_weight=o.text_loss_weight, image_weight=o.image_loss_weight,
        kl_weight=o.kl_loss_weight, gpa=gpa, teacher_ensemble=o.teacher_ensemble, n_ctx=o.n_ctx_text,
        ctx_init=o.ctx_init,
        text_depth=o.prompt_depth_text, vision_n_ctx=o.n_ctx_vision, vision_depth=o.prompt_depth_vision,
        keys={"N_CTX": KEY + "N_CTX_TEXT", "TEXT_DEPTH": KEY + "PROMPT_DEPTH_TEXT",
              "VISION_N_CTX": KEY + "N_CTX_VISION", "VISION_DEPTH": KEY + "PROMPT_DEPTH_VISION"})


METHOD = register(Method(
    name="PromptSRC", config_key="PROMPTSRC", options=PromptSRCOptions, build=build,
    summary="Self-regulating prompts (Khattak et al., ICCV 2023): IVLP prompts, consistency with frozen CLIP, "
            "Gaussian prompt aggregation"))
