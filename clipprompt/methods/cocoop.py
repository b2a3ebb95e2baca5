"""CoCoOp: Conditional Context Optimization (Zhou et al., CVPR 2022)."""

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clipprompt.methods.base import PromptLearnerCLIP
from clipprompt.methods.options import Options, option
from clipprompt.methods.registry import Method, register
from clipprompt.prompts.soft import SoftPrompt


class CoCoOpCLIP(PromptLearnerCLIP):
    """CoCoOp: context shifted per image by a meta-net on the image feature.

    ``v_j(x) = v_j + pi(x)`` with ``pi`` = Linear(D, D/16) - ReLU - Linear(D/16, width).
    Every image has its own C prompts; they go through the text encoder as one
    (B*C)-row batch instead of a Python loop over images.
    """

    def __init__(self, backbone, classnames, n_ctx=16, ctx_init="", class_token_position="end"):
        super().__init__(backbone, None)
        self.prompt_learner = SoftPrompt(self.backbone, classnames, n_ctx, ctx_init, False, class_token_position)
        vis_dim, ctx_dim = self.backbone.embed_dim, self.backbone.width
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


@dataclass
class CoCoOpOptions(Options):
    n_ctx: int = option(16, "N_CTX", "learnt context tokens")
    ctx_init: str = option("", "CTX_INIT", 'e.g. "a photo of a" (then N_CTX = its token count)')


METHOD = register(Method(
    name="CoCoOp", config_key="COCOOP", options=CoCoOpOptions,
    build=lambda backbone, classnames, o, context: CoCoOpCLIP(backbone, classnames, n_ctx=o.n_ctx,
                                                              ctx_init=o.ctx_init),
    summary="Conditional Context Optimization (Zhou et al., CVPR 2022)",
    published={"n_ctx": 4, "ctx_init": "a photo of a"}))
