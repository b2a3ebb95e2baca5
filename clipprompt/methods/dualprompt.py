"""DualPromptMI: a soft and a hand-crafted textual view tied by mutual
information, plus class-wise mixup of image features.

Reconstruction of arXiv 2410.03189 from its abstract; every uncertain choice
is an argument here and a config key under ``TRAINER.DUALPROMPTMI``.

For image features ``v_i`` (normalised), logit scale ``s`` and class set C:

* soft view ``t_c^s = g([SOS] v_1..v_M [CLASS_c] . [EOS])`` (learnable context),
* hand view ``t_c^h`` = hand-crafted template(s), frozen and encoded once,
* ``L = L_ce + MI.WEIGHT * L_mi + AUG.WEIGHT * L_aug`` with
  ``L_ce = CE(s v.t^s, y)``, ``L_mi = -I(view_s; view_h)`` (``MI.MODE``, see
  :mod:`clipprompt.objectives.mi`) and ``L_aug = CE(s v~.t^s, y~) - AUG.MI_WEIGHT * I(v~; t~)``,
* inference with ``t_c = normalise(w t_c^s + (1 - w) t_c^h)`` (w = 1: the soft
  view alone, as KgCoOp infers).

``PROMPT_LEARNER`` chooses how the soft view enters CLIP: ``coop`` (CoOp's context, the
model above), ``ivlp`` or ``maple`` (deep prompts in both towers, :mod:`clipprompt.prompts.deep`).
With vision prompts ``v_i`` comes from the prompted image tower, so the class-wise mixup acts on
prompted features; its class prototypes then go stale as the prompts train, so the trainer renews
them at every epoch start (:meth:`DualPromptMICLIP.refresh_prototypes`; ``AUG.PROTOTYPES running``
restarts its mean instead). ``VISION_MI.WEIGHT`` adds the visual twin of the view term:
``- VISION_MI.WEIGHT * I(v; v^0)`` between prompted and frozen image features, with the same
fixed-variance Gaussian bound as ``MI.MODE gaussian`` (PromptSRC's image-side consistency, read
as MIRO's MI with the frozen model). It costs one frozen image pass per step.

``PROMPT_LEARNER promptsrc`` runs DualPromptMI over PromptSRC: IVLP's prompts (the ``DEEP.*`` keys),
PromptSRC's three consistency terms added to the loss and its Gaussian prompt aggregation
(``PROMPTSRC.*``, PromptSRC's own declarations and defaults), all of them PromptSRC's code
(:mod:`clipprompt.methods.promptsrc`), so that with DualPromptMI's terms off
(``MI.WEIGHT 0 AUG.WEIGHT 0 INFER_WEIGHT 1``) a run is PromptSRC's, step for step and bit for bit.
After the aggregate replaces the prompts, the class prototypes are renewed from it, so that the
last checkpoint holds no state of earlier prompts.

``AUG.FEED_VIEW_MI`` also feeds the mixed features ``v~`` to the view MI. Only
the ``posterior`` mode looks at images (its joint is over the batch's
posteriors, which then cover ``[v; v~]``); the class-level modes (``critic``,
``views_nce``, ``gaussian``) compare the C class embeddings and have nothing
to feed, so the switch is refused for them rather than silently ignored.
"""

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clipprompt.errors import UserError
from clipprompt.methods.base import PromptCLIP
from clipprompt.methods.options import SoftPromptOptions, option, option_like
from clipprompt.methods.promptsrc import (GaussianPromptAggregate, PromptSRCOptions, SelfRegulation, check_teacher_ensemble,
                                         encode_teacher_text)
from clipprompt.methods.registry import Method, register
from clipprompt.objectives.mi import (
    CLASS_LEVEL_MODES,
    CLIP_TAU,
    CRITIC_ESTIMATOR,
    CRITIC_TAU,
    GAUSS_VAR,
    GAUSS_VAR_BOUNDS,
    MI_MODES,
    NCE_TAU_BOUNDS,
    CriticMI,
    GaussianMI,
    build_view_mi,
)
from clipprompt.objectives.mixup import ClassPrototypes, ClassWiseMixup, soft_cross_entropy
from clipprompt.prompts.deep import PROMPT_LEARNERS, build_prompt_learner
from clipprompt.prompts.hand import encode_hand_crafted, encode_hand_crafted_per_template

PROTOTYPE_SOURCES = ("precomputed", "running")
# promptsrc: IVLP's prompt learner with PromptSRC's terms and aggregation around it.
PROMPT_LEARNER_CHOICES = (*PROMPT_LEARNERS, "promptsrc")
KEY = "TRAINER.DUALPROMPTMI."
SRC_KEY = KEY + "PROMPTSRC."


@dataclass
class DualPromptMIConfig(SoftPromptOptions):
    """DualPromptMI's options (``TRAINER.DUALPROMPTMI``), every default once.

    Defaults: the best mean pseudo-HM of the three selection rounds on the many-class CPU benchmark
    (configs/ablation/dualpromptmi_many.py, dualpromptmi_aug.py, dualpromptmi_templates.py;
    docs/cpu_benchmarks.md and docs/experiments/): the gaussian view term at a fixed variance
    (KgCoOp's term, W 8), light inter-class mixup, soft view.
    """

    n_ctx: int = option(4, "N_CTX", "learnt context tokens")
    ctx_init: str = option("a photo of a", "CTX_INIT", 'e.g. "a photo of a" (then N_CTX = its token count)')
    # Each entry: a template with "{}", "dataset" (the dataset's hand-crafted template),
    # "dataset_ensemble" (the dataset's own prompt ensemble; without one, its template and CoOp's 7
    # ImageNet templates) or "imagenet_ensemble" (CoOp's 7 ImageNet templates); the hand view is the
    # normalised mean over all of them (views_nce: each one a positive).
    hand_templates: list = option(["dataset_ensemble"], "HAND_TEMPLATES",
                                  "the hand view's templates (round three's choice, dualpromptmi_templates.py)")
    infer_weight: float = option(1.0, "INFER_WEIGHT", "w in t = normalise(w t^s + (1 - w) t^h); 1 = soft view only")
    mi_weight: float = option(8.0, "MI.WEIGHT", "0 turns the view MI term off")
    mi_mode: str = option("gaussian", "MI.MODE", "posterior, critic, views_nce or gaussian")
    mi_estimator: str = option(CRITIC_ESTIMATOR, "MI.ESTIMATOR", "critic bound: infonce, jsd or dv")
    mi_tau: float = option(CRITIC_TAU, "MI.TAU", "critic temperature")
    mi_learn_tau: bool = option(False, "MI.LEARN_TAU", "learnable, bounded critic temperature")
    mi_learn_temperature: bool = option(False, "MI.LEARN_TEMPERATURE", "learnable temperature of the posterior MI")
    mi_learn_projection: bool = option(False, "MI.LEARN_PROJECTION",
                                       "learnable critic projections (critic mode; can saturate the bound alone)")
    mi_nce_tau: float = option(CLIP_TAU, "MI.NCE_TAU", "views_nce temperature: 1/100, CLIP's logit scale")
    mi_nce_learn_tau: bool = option(False, "MI.NCE_LEARN_TAU", "learnable views_nce temperature, kept inside (0.005, 0.5)")
    mi_gauss_var: float = option(GAUSS_VAR, "MI.GAUSS_VAR",
                                 "gaussian: initial (or fixed) per-dimension variance; fixed 1.0 = KgCoOp's term")
    mi_gauss_learn_var: bool = option(False, "MI.GAUSS_LEARN_VAR",
                                      "learnable per-dimension variance, kept inside GAUSS_VAR_BOUNDS")
    mi_gauss_var_bounds: tuple = option(GAUSS_VAR_BOUNDS, "MI.GAUSS_VAR_BOUNDS", "[low, high] of a learnt variance")
    mi_gauss_learn_map: bool = option(False, "MI.GAUSS_LEARN_MAP", "learnable linear map (identity-initialised) as the mean of q")
    aug_weight: float = option(0.25, "AUG.WEIGHT", "0 turns the class-wise augmentation off")
    aug_mode: str = option("inter", "AUG.MODE", "intra (own-class prototype) or inter (another class, mixed targets)")
    aug_alpha: float = option(1.0, "AUG.ALPHA", "lambda ~ Beta(alpha, alpha)")
    aug_mi_weight: float = option(1.0, "AUG.MI_WEIGHT", "weight of the visual-text MI bound inside L_aug")
    aug_prototypes: str = option("precomputed", "AUG.PROTOTYPES",
                                 "precomputed (a pass over the train set; every epoch with vision prompts) or running")
    aug_feed_view_mi: bool = option(False, "AUG.FEED_VIEW_MI", "posterior MI also over the mixed features (posterior mode only)")
    prompt_learner: str = option("coop", "PROMPT_LEARNER", "coop (CoOp's context), ivlp or maple (deep prompts in "
                                                           "both towers), promptsrc (ivlp with PromptSRC's terms and GPA)")
    deep_text_depth: int = option(9, "DEEP.TEXT_DEPTH", "ivlp / maple / promptsrc: text layers with prompts, the input "
                                                         "layer included (maple: both towers, N_CTX tokens)")
    deep_vision_n_ctx: int = option(4, "DEEP.VISION_N_CTX", "ivlp / promptsrc: vision prompt tokens (0: none)")
    deep_vision_depth: int = option(9, "DEEP.VISION_DEPTH", "ivlp / promptsrc: image layers with prompts")
    vision_mi_weight: float = option(0.0, "VISION_MI.WEIGHT",
                                     "MI between prompted and frozen image features (needs vision prompts)")
    # PROMPT_LEARNER promptsrc only: PromptSRC's options, as PromptSRC declares them (TRAINER.PROMPTSRC.<KEY>
    # is TRAINER.DUALPROMPTMI.PROMPTSRC.<KEY>).
    src_text_loss_weight: float = option_like(PromptSRCOptions, "text_loss_weight", "PROMPTSRC.TEXT_LOSS_WEIGHT")
    src_image_loss_weight: float = option_like(PromptSRCOptions, "image_loss_weight", "PROMPTSRC.IMAGE_LOSS_WEIGHT")
    src_kl_loss_weight: float = option_like(PromptSRCOptions, "kl_loss_weight", "PROMPTSRC.KL_LOSS_WEIGHT")
    src_gpa: bool = option_like(PromptSRCOptions, "gpa", "PROMPTSRC.GPA")
    src_gpa_mean: float = option_like(PromptSRCOptions, "gpa_mean", "PROMPTSRC.GPA_MEAN")
    src_gpa_std: float = option_like(PromptSRCOptions, "gpa_std", "PROMPTSRC.GPA_STD")
    src_hand_templates: list = option_like(PromptSRCOptions, "hand_templates", "PROMPTSRC.HAND_TEMPLATES")
    src_teacher_ensemble: str = option_like(PromptSRCOptions, "teacher_ensemble", "PROMPTSRC.TEACHER_ENSEMBLE")

    def prompt_depths(self):
        if self.prompt_learner == "maple":  # coupled: the text depth for both towers
            return [("DEEP.TEXT_DEPTH", "text", self.deep_text_depth), ("DEEP.TEXT_DEPTH", "image", self.deep_text_depth)]
        if self.prompt_learner not in ("ivlp", "promptsrc"):
            return []
        depths = [("DEEP.TEXT_DEPTH", "text", self.deep_text_depth)]
        if self.deep_vision_n_ctx > 0:
            depths.append(("DEEP.VISION_DEPTH", "image", self.deep_vision_depth))
        return depths

    @property
    def has_vision_prompts(self):
        return self.prompt_learner == "maple" or (self.prompt_learner in ("ivlp", "promptsrc") and self.deep_vision_n_ctx > 0)

    @property
    def prompt_learner_kind(self):
        """The prompt learner of :func:`build_prompt_learner` that holds the prompts (promptsrc: IVLP's)."""
        return "ivlp" if self.prompt_learner == "promptsrc" else self.prompt_learner

    def self_regulation(self):
        """PromptSRC's terms at the ``PROMPTSRC.*`` weights (a negative one is an error naming its key)."""
        return SelfRegulation(self.src_text_loss_weight, self.src_image_loss_weight, self.src_kl_loss_weight, SRC_KEY)

    @property
    def uses_mixup(self):
        """Whether a step mixes image features (and so needs class prototypes)."""
        return self.aug_weight > 0 or (self.aug_feed_view_mi and self.mi_weight > 0)

    def validate(self, prefix=KEY):
        super().validate(prefix)
        if not 0.0 <= self.infer_weight <= 1.0:
            raise UserError(f"TRAINER.DUALPROMPTMI.INFER_WEIGHT must lie in [0, 1], got {self.infer_weight}")
        if self.mi_mode not in MI_MODES:
            raise UserError(f"TRAINER.DUALPROMPTMI.MI.MODE must be one of {', '.join(MI_MODES)}, got {self.mi_mode!r}")
        if self.aug_prototypes not in PROTOTYPE_SOURCES:
            raise UserError(f"TRAINER.DUALPROMPTMI.AUG.PROTOTYPES must be one of {', '.join(PROTOTYPE_SOURCES)}, got {self.aug_prototypes!r}")
        if self.prompt_learner not in PROMPT_LEARNER_CHOICES:
            raise UserError(f"{KEY}PROMPT_LEARNER must be one of {', '.join(PROMPT_LEARNER_CHOICES)}, got {self.prompt_learner!r}")
        if self.vision_mi_weight > 0 and not self.has_vision_prompts:
            raise UserError(f"{KEY}VISION_MI.WEIGHT needs vision prompts (PROMPT_LEARNER ivlp or promptsrc with "
                            f"DEEP.VISION_N_CTX > 0, or maple): with PROMPT_LEARNER {self.prompt_learner} the image tower "
                            "is frozen CLIP's; set it to 0")
        check_teacher_ensemble(self.src_teacher_ensemble, SRC_KEY)
        self.self_regulation()  # GPA_MEAN and GPA_STD: checked with the schedule's length (GaussianPromptAggregate)
        self.check_non_negative(KEY, **{"MI.WEIGHT": self.mi_weight, "AUG.WEIGHT": self.aug_weight,
                                        "AUG.MI_WEIGHT": self.aug_mi_weight, "VISION_MI.WEIGHT": self.vision_mi_weight})
        self._validate_estimators()
        if self.aug_feed_view_mi and self.mi_mode in CLASS_LEVEL_MODES:
            raise UserError(f"{KEY}AUG.FEED_VIEW_MI needs MI.MODE posterior (MI.MODE {self.mi_mode} compares class "
                            "embeddings and uses no image features); set it to False")
        return self

    def _validate_estimators(self):
        """One-line errors naming the key for the views_nce and gaussian settings."""
        if not self.mi_nce_tau > 0:
            raise UserError(f"{KEY}MI.NCE_TAU must be positive, got {self.mi_nce_tau}")
        low, high = NCE_TAU_BOUNDS
        if self.mi_nce_learn_tau and not low < self.mi_nce_tau < high:
            raise UserError(f"{KEY}MI.NCE_TAU must lie inside {NCE_TAU_BOUNDS} when MI.NCE_LEARN_TAU is on, got {self.mi_nce_tau}")
        bounds = self.mi_gauss_var_bounds
        if len(bounds) != 2 or not all(isinstance(b, (int, float)) for b in bounds) or not 0 < bounds[0] < bounds[1]:
            raise UserError(f"{KEY}MI.GAUSS_VAR_BOUNDS must be two numbers [low, high] with 0 < low < high, got {list(bounds)}")
        if not self.mi_gauss_var > 0:
            raise UserError(f"{KEY}MI.GAUSS_VAR must be positive, got {self.mi_gauss_var}")
        if self.mi_gauss_learn_var and not bounds[0] < self.mi_gauss_var < bounds[1]:
            raise UserError(f"{KEY}MI.GAUSS_VAR must lie inside MI.GAUSS_VAR_BOUNDS {list(bounds)} when "
                            f"MI.GAUSS_LEARN_VAR is on, got {self.mi_gauss_var}")


class DualPromptMICLIP(PromptCLIP):
    # Only these submodules' state moves between class sets (base -> new):
    # the shared context and the critics. Prototypes and CSC context belong
    # to the class set they were trained on.
    CLASS_DEPENDENT_PREFIXES = ("prototypes.",)

    def __init__(self, backbone, classnames, hand_templates, config=None, teacher_templates=None, max_epoch=None):
        """``teacher_templates`` (PromptSRC's frozen text teacher) and ``max_epoch`` (the length of the
        schedule its aggregation weighs): for ``PROMPT_LEARNER promptsrc`` only."""
        super().__init__(backbone)
        self.config = cfg = (config or DualPromptMIConfig()).validate()
        # coop: CoOp's SoftPrompt, exactly today's model; ivlp / maple / promptsrc: deep prompts in both
        # towers (the image features below then come from the prompted vision tower).
        self.prompt_learner = build_prompt_learner(
            cfg.prompt_learner_kind, self.backbone, classnames, cfg.n_ctx, cfg.ctx_init, cfg.csc,
            cfg.class_token_position, text_depth=cfg.deep_text_depth, vision_n_ctx=cfg.deep_vision_n_ctx,
            vision_depth=cfg.deep_vision_depth, key=f"{KEY}PROMPT_LEARNER", label=cfg.prompt_learner,
            keys={"N_CTX": f"{KEY}N_CTX", "TEXT_DEPTH": f"{KEY}DEEP.TEXT_DEPTH",
                  "VISION_N_CTX": f"{KEY}DEEP.VISION_N_CTX", "VISION_DEPTH": f"{KEY}DEEP.VISION_DEPTH"})
        self.regulation = self.aggregate = None
        if cfg.prompt_learner == "promptsrc":  # PromptSRC's pieces, under PromptSRCCLIP's names
            if teacher_templates is None or (cfg.src_gpa and max_epoch is None):
                raise ValueError("PROMPT_LEARNER promptsrc needs teacher_templates (and max_epoch with GPA)")
            self.regulation = cfg.self_regulation()
            self.register_buffer("teacher_text", encode_teacher_text(self.backbone, classnames, teacher_templates,
                                                                     cfg.src_teacher_ensemble), persistent=False)
            if cfg.src_gpa:
                self.aggregate = GaussianPromptAggregate(self.prompt_learner, max_epoch, cfg.src_gpa_mean,
                                                         cfg.src_gpa_std, key=SRC_KEY)
        # The hand view never changes for a class set: encode it once, keep it out of checkpoints.
        # views_nce needs every template's embedding (K x C x D); the view is their normalised mean,
        # as encode_hand_crafted computes it, so the templates are encoded once either way.
        templates = [hand_templates] if isinstance(hand_templates, str) else list(hand_templates)
        per_template = None
        if cfg.mi_mode == "views_nce" and len(templates) > 1:
            per_template = encode_hand_crafted_per_template(self.backbone, classnames, templates)
            hand = F.normalize(per_template.mean(dim=0), dim=-1)
        else:
            hand = encode_hand_crafted(self.backbone, classnames, templates)
            if cfg.mi_mode == "views_nce":
                per_template = hand.unsqueeze(0)
        self.register_buffer("hand_features", hand, persistent=False)
        self.register_buffer("hand_per_template", per_template, persistent=False)
        dim = self.hand_features.shape[1]
        # These modules start from fixed values and draw no random numbers, so a run draws the same
        # ones whatever its terms (over promptsrc: PromptSRC's batch order and augmentations).
        try:
            self.view_mi = build_view_mi(
                cfg.mi_mode, dim, estimator=cfg.mi_estimator, tau=cfg.mi_tau, learn_tau=cfg.mi_learn_tau,
                learn_temperature=cfg.mi_learn_temperature, learn_projection=cfg.mi_learn_projection,
                nce_tau=cfg.mi_nce_tau, nce_learn_tau=cfg.mi_nce_learn_tau, gauss_var=cfg.mi_gauss_var,
                gauss_learn_var=cfg.mi_gauss_learn_var, gauss_var_bounds=cfg.mi_gauss_var_bounds,
                gauss_learn_map=cfg.mi_gauss_learn_map)
            self.aug_mi = CriticMI(dim, dim, estimator=cfg.mi_estimator, tau=cfg.mi_tau, learn_tau=cfg.mi_learn_tau)
            self.mixup = ClassWiseMixup(cfg.aug_mode, cfg.aug_alpha)
        except ValueError as exc:
            raise UserError(f"TRAINER.DUALPROMPTMI: {exc}") from None
        self.prototypes = ClassPrototypes(len(classnames), dim)
        if cfg.vision_mi_weight > 0:  # the visual twin of the view term: prompted vs frozen image features
            self.vision_mi = GaussianMI(dim, var=cfg.mi_gauss_var)
        self._soft_cache = None

    # ----- views -------------------------------------------------------------
    def soft_view(self):
        if self._soft_cache is not None:
            return self._soft_cache
        return self.encode_prompts()

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
        # Each view alone too, whatever w is (one more B x C product each): the ensemble is a
        # free lever by itself, and the soft view alone is what a collapse check reads.
        outputs["soft_only"] = outputs["main"] if self.config.infer_weight == 1.0 else self.logits(features, self.soft_view())
        outputs["hand_only"] = self.logits(features, self.hand_features)
        return outputs

    # ----- training ------------------------------------------------------------
    @torch.no_grad()
    def observe(self, image_features, labels):
        """Add training image features to the class prototypes."""
        self.prototypes.update(image_features, labels)

    @property
    def prototypes_follow_image_tower(self):
        """Whether the class prototypes go stale as training goes, and so must be renewed each epoch.

        True when the mixup uses prototypes and the image features depend on trained vision prompts
        (``ivlp`` or ``promptsrc`` with ``DEEP.VISION_N_CTX`` > 0, ``maple``). With CoOp's context (or ``ivlp`` without
        vision tokens) the image tower is frozen CLIP's: features computed once stay exact.
        """
        return self.config.uses_mixup and self.config.has_vision_prompts

    @torch.no_grad()
    def refresh_prototypes(self, batches):
        """Recompute the prototypes from scratch over ``batches`` of ``(images, labels)`` (e.g. the
        few-shot training set) with the image tower as it is now, without a graph; returns the
        number of images. The trainer calls it once before training, or at every epoch start when
        :attr:`prototypes_follow_image_tower`."""
        self.prototypes.reset()
        for image, label in batches:
            self.observe(self.encode_image(image), label)
        return int(self.prototypes.count.sum())

    # ----- lifecycle (called by the trainer) -------------------------------------------
    def synced_statistics(self):
        return [(self.prototypes, ("feature_sum", "count"))]

    def begin_training(self, run):
        # A frozen image tower (CoOp's context): one pass before training holds for every epoch,
        # and a resumed run has the prototypes from its checkpoint.
        cfg = self.config
        if (cfg.uses_mixup and cfg.aug_prototypes == "precomputed" and run.start_epoch == 0
                and not self.prototypes_follow_image_tower):
            return self._renew_prototypes(run)
        return None

    def begin_epoch(self, run):
        if not self.prototypes_follow_image_tower:
            return None
        # Trained vision prompts move the image features: renew the prototypes at every epoch start
        # (a resumed run too, from the restored RNG state, so it repeats the uninterrupted run).
        if self.config.aug_prototypes == "precomputed":
            return self._renew_prototypes(run)
        self.prototypes.reset()  # running: the mean of this epoch's features only
        run.sync_statistics()  # zero on every process
        return None

    def end_epoch(self, run):
        """promptsrc: PromptSRC's aggregation step. Once the aggregate replaced the prompts, prototypes
        that follow the image tower are renewed from it, so the last checkpoint describes one model."""
        if self.aggregate is None:
            return None
        message = self.aggregate.end_epoch(self.prompt_learner, run.epoch + 1)
        if message and self.prototypes_follow_image_tower:
            message = f"{message}\n{self._renew_prototypes(run, 'the aggregated prompts')}"
        return message

    def _renew_prototypes(self, run, when=None):
        """One no-grad pass over the few-shot training set: per-class mean image feature (``when``: what
        the printed line says of the image tower, by default its epoch)."""
        follows = self.prototypes_follow_image_tower
        # Renewed prototypes use the steps' precision (amp: autocast), which is what they describe and
        # what keeps the pass cheap on a GPU; the one pass of a frozen tower stays as it always was.
        with run.autocast() if follows else contextlib.nullcontext():
            self.refresh_prototypes(run.batches())
        run.sync_statistics()  # under torchrun: each process saw its slice
        when = when or (f"epoch {run.epoch + 1}, prompted image tower" if follows else "")
        return f"Class prototypes from {int(self.prototypes.count.sum())} training images{f' ({when})' if when else ''}"

    def view_mutual_information(self, image_features, soft, soft_logits):
        """The view-MI value of ``MI.MODE``; the posterior mode reads the given images' logits."""
        mode = self.config.mi_mode
        if mode == "posterior":
            return self.view_mi(soft_logits, self.logits(image_features, self.hand_features))
        if mode == "views_nce":
            return self.view_mi(soft, self.hand_per_template)
        return self.view_mi(soft, self.hand_features)

    def augmentation_loss(self, mixed, labels, soft, mixed_logits):
        """``L_aug`` for a :class:`MixupOutput` and its soft-view logits; returns (loss, visual-text MI)."""
        ce = soft_cross_entropy(mixed_logits, mixed.targets)
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
        mixed = mixed_logits = None
        if cfg.uses_mixup:  # one draw per step, shared by L_aug and (when fed) the view MI
            if cfg.aug_prototypes == "running":
                self.observe(features, labels)
            mixed = self.mixup(features, labels, self.prototypes.prototypes(), seen_mask=self.prototypes.seen)
            mixed_logits = self.logits(mixed.features, soft)
        if cfg.mi_weight > 0:
            if cfg.aug_feed_view_mi:
                mi = self.view_mutual_information(torch.cat([features, mixed.features]), soft,
                                                  torch.cat([logits, mixed_logits]))
            else:
                mi = self.view_mutual_information(features, soft, logits)
            loss = loss - cfg.mi_weight * mi
            terms["mi_views"] = mi.detach()
        if cfg.aug_weight > 0:
            aug, aug_mi = self.augmentation_loss(mixed, labels, soft, mixed_logits)
            loss = loss + cfg.aug_weight * aug
            terms["loss_aug"] = aug.detach()
            terms["mi_aug"] = aug_mi.detach()
        regularised = self.regulation is not None and self.regulation.active
        if cfg.vision_mi_weight > 0 or regularised:  # one frozen image pass serves both
            frozen = self.encode_image_frozen(image)
        if cfg.vision_mi_weight > 0:
            mi = self.vision_mi(features, frozen)
            loss = loss - cfg.vision_mi_weight * mi
            terms["mi_vision"] = mi.detach()
        if regularised:  # PromptSRC's terms, on the soft view (the prompted text features)
            loss = self.regulation.add_to(loss, self, soft, self.teacher_text, features, frozen, logits, terms)
        return loss, logits, terms


def build(backbone, classnames, options, context):
    templates = context.templates(options.hand_templates, "Hand-crafted view")
    if options.prompt_learner != "promptsrc":
        return DualPromptMICLIP(backbone, classnames, templates, options)
    teacher = context.templates(options.src_hand_templates, "Frozen text teacher")
    return DualPromptMICLIP(backbone, classnames, templates, options, teacher_templates=teacher,
                            max_epoch=context.max_epoch)


METHOD = register(Method(
    name="DualPromptMI", config_key="DUALPROMPTMI", options=DualPromptMIConfig, build=build,
    summary="Soft + hand-crafted textual views with MI maximisation and class-wise mixup (arXiv 2410.03189)"))
