"""DualPromptMI: a soft and a hand-crafted textual view tied by mutual
information, plus class-wise mixup of image features.

Reconstruction of arXiv 2410.03189 from its abstract; every uncertain choice
is an argument here and a config key under ``TRAINER.DUALPROMPTMI``.

For image features ``v_i`` (normalised), logit scale ``s`` and class set C:

* soft view ``t_c^s = g([SOS] v_1..v_M [CLASS_c] . [EOS])`` (learnable context),
* hand view ``t_c^h`` = hand-crafted template(s), frozen and encoded once,
* ``L = L_ce + MI.WEIGHT * L_mi + AUG.WEIGHT * L_aug`` with
  ``L_ce = CE(s v.t^s, y)``, ``L_mi = -I(view_s; view_h)`` and
  ``L_aug = CE(s v~.t^s, y~) - AUG.MI_WEIGHT * I(v~; t~)``,
* inference with ``t_c = normalise(w t_c^s + (1 - w) t_c^h)``.
"""

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .augment import ClassPrototypes, ClassWiseMixup, soft_cross_entropy
from .errors import UserError
from .mi import CriticMI, build_view_mi
from .models import PromptCLIP
from .prompts import SoftPrompt, encode_hand_crafted

MI_MODES = ("posterior", "critic")
PROTOTYPE_SOURCES = ("precomputed", "running")


@dataclass
class DualPromptMIConfig:
    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    csc: bool = False
    class_token_position: str = "end"
    infer_weight: float = 0.5
    mi_weight: float = 3.0
    mi_mode: str = "posterior"
    mi_estimator: str = "infonce"
    mi_tau: float = 0.07
    mi_learn_tau: bool = False
    mi_learn_temperature: bool = False
    mi_learn_projection: bool = False
    aug_weight: float = 1.0
    aug_mode: str = "intra"
    aug_alpha: float = 1.0
    aug_mi_weight: float = 1.0
    aug_prototypes: str = "precomputed"

    # yacs key under TRAINER.DUALPROMPTMI -> field (PREC and HAND_TEMPLATES are the trainer's).
    CFG_KEYS = {
        "N_CTX": "n_ctx", "CTX_INIT": "ctx_init", "CSC": "csc", "CLASS_TOKEN_POSITION": "class_token_position",
        "INFER_WEIGHT": "infer_weight", "MI.WEIGHT": "mi_weight", "MI.MODE": "mi_mode",
        "MI.ESTIMATOR": "mi_estimator", "MI.TAU": "mi_tau", "MI.LEARN_TAU": "mi_learn_tau",
        "MI.LEARN_TEMPERATURE": "mi_learn_temperature", "MI.LEARN_PROJECTION": "mi_learn_projection",
        "AUG.WEIGHT": "aug_weight", "AUG.MODE": "aug_mode", "AUG.ALPHA": "aug_alpha",
        "AUG.MI_WEIGHT": "aug_mi_weight", "AUG.PROTOTYPES": "aug_prototypes",
    }

    @classmethod
    def from_cfg(cls, node):
        """From the yacs node ``cfg.TRAINER.DUALPROMPTMI``."""
        values = {}
        for key, field in cls.CFG_KEYS.items():
            value = node
            for part in key.split("."):
                value = value[part]
            default = cls.__dataclass_fields__[field].default
            values[field] = float(value) if isinstance(default, float) else value
        return cls(**values)

    def validate(self):
        if not 0.0 <= self.infer_weight <= 1.0:
            raise UserError(f"TRAINER.DUALPROMPTMI.INFER_WEIGHT must lie in [0, 1], got {self.infer_weight}")
        if self.mi_mode not in MI_MODES:
            raise UserError(f"TRAINER.DUALPROMPTMI.MI.MODE must be one of {', '.join(MI_MODES)}, got {self.mi_mode!r}")
        if self.aug_prototypes not in PROTOTYPE_SOURCES:
            raise UserError(f"TRAINER.DUALPROMPTMI.AUG.PROTOTYPES must be one of {', '.join(PROTOTYPE_SOURCES)}, got {self.aug_prototypes!r}")
        for key, value in (("MI.WEIGHT", self.mi_weight), ("AUG.WEIGHT", self.aug_weight), ("AUG.MI_WEIGHT", self.aug_mi_weight)):
            if value < 0:
                raise UserError(f"TRAINER.DUALPROMPTMI.{key} must be >= 0, got {value}")
        return self


class DualPromptMICLIP(PromptCLIP):
    # Only these submodules' state moves between class sets (base -> new):
    # the shared context and the critics. Prototypes and CSC context belong
    # to the class set they were trained on.
    CLASS_DEPENDENT_PREFIXES = ("prototypes.",)

    def __init__(self, clip_model, classnames, hand_templates, config=None):
        super().__init__(clip_model)
        self.config = cfg = (config or DualPromptMIConfig()).validate()
        self.prompt_learner = SoftPrompt(clip_model, classnames, cfg.n_ctx, cfg.ctx_init, cfg.csc, cfg.class_token_position)
        # The hand view never changes for a class set: encode it once, keep it out of checkpoints.
        self.register_buffer("hand_features", encode_hand_crafted(clip_model, classnames, hand_templates), persistent=False)
        dim = self.hand_features.shape[1]
        try:
            self.view_mi = build_view_mi(cfg.mi_mode, dim, estimator=cfg.mi_estimator, tau=cfg.mi_tau,
                                         learn_tau=cfg.mi_learn_tau, learn_temperature=cfg.mi_learn_temperature,
                                         learn_projection=cfg.mi_learn_projection)
            self.aug_mi = CriticMI(dim, dim, estimator=cfg.mi_estimator, tau=cfg.mi_tau, learn_tau=cfg.mi_learn_tau)
            self.mixup = ClassWiseMixup(cfg.aug_mode, cfg.aug_alpha)
        except ValueError as exc:
            raise UserError(f"TRAINER.DUALPROMPTMI: {exc}") from None
        self.prototypes = ClassPrototypes(len(classnames), dim)
        self._soft_cache = None

    # ----- views -------------------------------------------------------------
    def soft_view(self):
        if self._soft_cache is not None:
            return self._soft_cache
        prompts = self.prompt_learner()
        features = self.text_encoder(prompts, self.prompt_learner.tokenized_prompts)
        return F.normalize(features.float(), dim=-1)

    def ensemble(self, soft, weight):
        if weight == 1.0:
            return soft
        return F.normalize(weight * soft + (1.0 - weight) * self.hand_features, dim=-1)

    def compute_text_features(self):
        return self.ensemble(self.soft_view(), self.config.infer_weight)

    @contextlib.contextmanager
    def cached_text_features(self):
        with torch.no_grad():
            self._soft_cache = self.soft_view()
            self._text_cache = self.ensemble(self._soft_cache, self.config.infer_weight)
        try:
            yield
        finally:
            self._soft_cache = self._text_cache = None

    def predict(self, image):
        features = self.encode_image(image)
        outputs = {"main": self.logits(features, self.text_features())}
        if self.config.infer_weight != 1.0:
            # Report the soft view alone too: the ensemble is a free lever by itself.
            outputs["soft_only"] = self.logits(features, self.soft_view())
            outputs["hand_only"] = self.logits(features, self.hand_features)
        return outputs

    # ----- training ------------------------------------------------------------
    @torch.no_grad()
    def observe(self, image_features, labels):
        """Add training image features to the class prototypes."""
        self.prototypes.update(image_features, labels)

    def view_mutual_information(self, image_features, soft, soft_logits):
        if self.config.mi_mode == "posterior":
            return self.view_mi(soft_logits, self.logits(image_features, self.hand_features))
        return self.view_mi(soft, self.hand_features)

    def augmentation_loss(self, image_features, labels, soft):
        mixed = self.mixup(image_features, labels, self.prototypes.prototypes(), seen_mask=self.prototypes.seen)
        ce = soft_cross_entropy(self.logits(mixed.features, soft), mixed.targets)
        if self.config.aug_mi_weight == 0:
            return ce, ce.new_zeros(())
        text_targets = self.mixup.mix_text(soft, labels, mixed.partner, mixed.lam)
        mi = self.aug_mi(mixed.features, text_targets)
        return ce - self.config.aug_mi_weight * mi, mi

    def loss(self, image, labels):
        """Total loss, the soft-view logits, and each term (detached) for logging."""
        cfg = self.config
        features = self.encode_image(image)
        soft = self.soft_view()
        logits = self.logits(features, soft)
        loss = F.cross_entropy(logits, labels)
        terms = {"loss_ce": loss.detach()}
        if cfg.mi_weight > 0:
            mi = self.view_mutual_information(features, soft, logits)
            loss = loss - cfg.mi_weight * mi
            terms["mi_views"] = mi.detach()
        if cfg.aug_weight > 0:
            if cfg.aug_prototypes == "running":
                self.observe(features, labels)
            aug, aug_mi = self.augmentation_loss(features, labels, soft)
            loss = loss + cfg.aug_weight * aug
            terms["loss_aug"] = aug.detach()
            terms["mi_aug"] = aug_mi.detach()
        return loss, logits, terms
