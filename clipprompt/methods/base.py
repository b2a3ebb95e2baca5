"""The prompt model every method builds on, and the hooks a trainer calls.

``PromptCLIP`` holds the frozen image and text towers, the logit scale and a per-evaluation cache
of the text features that do not depend on the image. A method overrides what it needs:

* ``loss(image, labels)`` -> (loss, logits, terms to log); cross-entropy by default;
* ``backward(loss, terms, params, step)``: fills the trainable gradients; ``loss.backward()``
  by default (ProGrad projects two gradients instead);
* ``begin_training(run)``, ``begin_epoch(run)``, ``end_epoch(run)``: the lifecycle (class
  prototypes, prompt aggregation), each may return a line to print;
* ``synced_statistics()``: buffers that are sums over the training data, kept equal across
  processes under torchrun;
* ``CLASS_DEPENDENT_PREFIXES``: state that belongs to the class set it was trained on.

The generic trainer (``trainers/base.py``) calls these and knows no method.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from clipprompt.clip.backbone import as_backbone
from clipprompt.clip.towers import TextEncoder, encode_images

# What stays frozen CLIP: never trained, never in a checkpoint.
FROZEN_PREFIXES = ("image_encoder.", "text_encoder.", "logit_scale")


class PromptCLIP(nn.Module):
    """Frozen CLIP towers plus whatever prompt module a subclass adds (``prompt_learner``)."""

    CLASS_DEPENDENT_PREFIXES = ()

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone = as_backbone(backbone)  # the one wrap of a raw CLIP on the way in
        self.image_encoder = backbone.visual
        self.text_encoder = TextEncoder(backbone)
        self.logit_scale = backbone.logit_scale
        self.prompt_learner = None  # a SoftPrompt or DeepPrompt where a method has one
        self._text_cache = None

    @property
    def dtype(self):
        return self.backbone.dtype

    @property
    def class_specific(self):
        """Whether the prompts are bound to the training classes (CoOp's CSC): they cannot move to others."""
        return self.prompt_learner is not None and self.prompt_learner.csc  # every learner is a SoftPrompt

    @property
    def seq_first(self):
        return self.backbone.seq_first

    # ----- features ------------------------------------------------------------
    def encode_image_frozen(self, image):
        """Frozen CLIP's image features: no prompts, and never a graph through the image tower."""
        with torch.no_grad():
            features = encode_images(self.image_encoder, image, self.dtype, self.seq_first)
        return F.normalize(features.float(), dim=-1)

    def encode_image(self, image):
        """With the prompt learner's vision prompts where it has them (the tower's activations are
        then kept for backward), else the frozen features."""
        prompts = self.prompt_learner.vision_prompts() if self.prompt_learner is not None else None
        if prompts is None:
            return self.encode_image_frozen(image)
        features = encode_images(self.image_encoder, image, self.dtype, self.seq_first, prompts)
        return F.normalize(features.float(), dim=-1)

    def encode_prompts(self):
        """(C, D) normalised text features of the prompt learner's prompts (deep ones included)."""
        learner = self.prompt_learner
        features = self.text_encoder(learner(), learner.tokenized_prompts, learner.deep_text_prompts())
        return F.normalize(features.float(), dim=-1)

    def compute_text_features(self):
        """(C, D) normalised class text features; subclasses define it."""
        raise NotImplementedError

    def text_features(self):
        if self._text_cache is not None:
            return self._text_cache
        return self.compute_text_features()

    @contextlib.contextmanager
    def cached_text_features(self):
        """Compute the image-independent text features once for a whole evaluation."""
        with torch.no_grad():
            self._text_cache = self.compute_text_features()
        try:
            yield
        finally:
            self._text_cache = None

    def scale(self):
        return self.logit_scale.exp().float()

    def logits(self, image_features, text_features):
        return self.scale() * image_features @ text_features.t()

    def forward(self, image):
        return self.logits(self.encode_image(image), self.text_features())

    def predict(self, image):
        """Named logits for evaluation; "main" is the reported one."""
        return {"main": self.forward(image)}

    # ----- training hooks --------------------------------------------------------
    def loss(self, image, labels):
        """(loss, logits, terms to log): plain cross-entropy."""
        logits = self(image)
        return F.cross_entropy(logits, labels), logits, {}

    def backward(self, loss, terms, params, step):
        """Fill the gradients of ``params`` for this step. ``step.scale(loss)`` applies the amp
        scaler (identity without one); ``step.reduce(grads)`` gives the global batch's gradients
        under torchrun (a hook that does not call it has its ``.grad`` reduced after it returns)."""
        step.scale(loss).backward()

    def begin_training(self, run):
        """Before the first epoch of a run (``run.start_epoch`` > 0 when resumed)."""

    def begin_epoch(self, run):
        """At the start of every epoch (``run.epoch``, 0-based)."""

    def end_epoch(self, run):
        """After every epoch, before its checkpoint is saved."""

    def synced_statistics(self):
        """``[(module, buffer names)]`` of sums over the training data (kept equal across processes)."""
        return []

    # ----- parameters -------------------------------------------------------------
    def freeze_clip(self):
        """Freeze CLIP's towers and logit scale; returns the trainable parameters (the prompts)."""
        trainable = []
        for name, param in self.named_parameters():
            frozen = name.startswith(FROZEN_PREFIXES)
            param.requires_grad_(not frozen)
            if not frozen:
                trainable.append(param)
        return trainable

    def trainable_state_dict(self):
        """What a checkpoint holds: trainable parameters and persistent buffers, not frozen CLIP."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FROZEN_PREFIXES)}


class PromptLearnerCLIP(PromptCLIP):
    """CLIP whose class text features come from a prompt learner (CoOp's context or deep prompts)."""

    def __init__(self, backbone, prompt_learner):
        super().__init__(backbone)
        self.prompt_learner = prompt_learner

    def compute_text_features(self):
        return self.encode_prompts()
