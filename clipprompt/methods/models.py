"""CLIP classifiers over prompts: zero-shot, CoOp, CoCoOp and deep vision-language prompts.

All share ``PromptCLIP``: the frozen image and text towers, the logit scale,
and a per-evaluation cache of text features that do not depend on the image.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from clipprompt.clip.backbone import as_backbone
from clipprompt.prompts.deep import DeepPrompt, prompted_vision
from clipprompt.prompts.soft import SoftPrompt, encode_hand_crafted
from clipprompt.clip.towers import TextEncoder


class PromptCLIP(nn.Module):
    """Frozen CLIP towers plus whatever prompt module a subclass adds."""

    def __init__(self, clip_model):
        super().__init__()
        backbone = as_backbone(clip_model)
        self.image_encoder = backbone.visual
        self.text_encoder = TextEncoder(backbone)
        self.logit_scale = backbone.logit_scale
        self.dtype = backbone.dtype
        self.seq_first = backbone.seq_first
        self._text_cache = None

    def encode_image_frozen(self, image):
        """Frozen CLIP's image features: no prompts, and never a graph through the image tower."""
        with torch.no_grad():
            features = self.image_encoder(image.type(self.dtype))
        return F.normalize(features.float(), dim=-1)

    def encode_image(self, image):
        """The prompt learner's vision prompts in the tower where it has them (the tower's
        activations are then kept for backward), else the frozen features."""
        learner = getattr(self, "prompt_learner", None)  # a SoftPrompt or DeepPrompt where a subclass has one
        prompts = learner.vision_prompts() if learner is not None else None
        if prompts is None:
            return self.encode_image_frozen(image)
        with prompted_vision(self.image_encoder, *prompts, seq_first=self.seq_first):
            features = self.image_encoder(image.type(self.dtype))
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

    def trainable_state_dict(self):
        """What a checkpoint holds: trainable parameters and persistent buffers, not frozen CLIP."""
        frozen = {f"image_encoder.{k}" for k in self.image_encoder.state_dict()}
        frozen |= {f"text_encoder.{k}" for k in self.text_encoder.state_dict()}
        frozen.add("logit_scale")
        return {k: v for k, v in self.state_dict().items() if k not in frozen}


class ZeroShotCLIP(PromptCLIP):
    """Hand-crafted prompts (one template, or the mean over several)."""

    def __init__(self, clip_model, classnames, templates):
        super().__init__(clip_model)
        self.register_buffer("class_text_features", encode_hand_crafted(clip_model, classnames, templates), persistent=False)

    def compute_text_features(self):
        return self.class_text_features


class CoOpCLIP(PromptCLIP):
    """CoOp: one learnable context (or one per class) shared by all images."""

    def __init__(self, clip_model, classnames, n_ctx=16, ctx_init="", csc=False, class_token_position="end"):
        super().__init__(clip_model)
        self.prompt_learner = SoftPrompt(clip_model, classnames, n_ctx, ctx_init, csc, class_token_position)

    def compute_text_features(self):
        return self.encode_prompts()


class DeepPromptCLIP(PromptCLIP):
    """Deep vision-language prompts (``deep_prompts.DeepPrompt``): IVLP, or MaPLe with ``coupled``.

    Trained with cross-entropy, this is MaPLe (coupled) or IVLP; PromptSRC adds its
    regularisers (``promptsrc.py``).
    """

    def __init__(self, clip_model, classnames, n_ctx=4, ctx_init="a photo of a", text_depth=9,
                 vision_n_ctx=4, vision_depth=9, coupled=False, keys=None):
        super().__init__(clip_model)
        self.prompt_learner = DeepPrompt(clip_model, classnames, n_ctx, ctx_init, text_depth=text_depth,
                                         vision_n_ctx=vision_n_ctx, vision_depth=vision_depth, coupled=coupled,
                                         keys=keys)

    def compute_text_features(self):
        return self.encode_prompts()


class CoCoOpCLIP(PromptCLIP):
    """CoCoOp: context shifted per image by a meta-net on the image feature.

    ``v_j(x) = v_j + pi(x)`` with ``pi`` = Linear(D, D/16) - ReLU - Linear(D/16, width).
    Every image has its own C prompts; they go through the text encoder as one
    (B*C)-row batch instead of a Python loop over images.
    """

    def __init__(self, clip_model, classnames, n_ctx=16, ctx_init="", class_token_position="end"):
        super().__init__(clip_model)
        self.prompt_learner = SoftPrompt(clip_model, classnames, n_ctx, ctx_init, False, class_token_position)
        backbone = as_backbone(clip_model)
        vis_dim, ctx_dim = backbone.embed_dim, backbone.width
        self.meta_net = nn.Sequential(
            nn.Linear(vis_dim, vis_dim // 16),
            nn.ReLU(inplace=True),
            nn.Linear(vis_dim // 16, ctx_dim),
        ).to(self.dtype)

    def conditional_context(self, image_features):
        bias = self.meta_net(image_features.type(self.dtype))  # (B, width)
        return self.prompt_learner.ctx.unsqueeze(0) + bias.unsqueeze(1)  # (B, M, width)

    def logits_from_features(self, image_features):
        batch, n_cls = image_features.shape[0], self.prompt_learner.num_classes
        prompts = self.prompt_learner.assemble(self.conditional_context(image_features))  # (B, C, L, w)
        tokenized = self.prompt_learner.tokenized_prompts.repeat(batch, 1)
        text = self.text_encoder(prompts.flatten(0, 1), tokenized).view(batch, n_cls, -1)
        text = F.normalize(text.float(), dim=-1)
        return self.scale() * torch.einsum("bd,bcd->bc", image_features, text)

    @contextlib.contextmanager
    def cached_text_features(self):
        yield  # text features depend on the image: nothing to cache

    def forward(self, image):
        return self.logits_from_features(self.encode_image(image))
