"""Deep vision-language prompt learners (IVLP, MaPLe): the parameters, not how they enter CLIP.

Upstream MaPLe and PromptSRC fork ``clip/model.py`` to put prompts inside the blocks. Here
CLIP's modules run unchanged and the insertion lives in :mod:`clipprompt.clip.towers`:

* **Text tower.** Layer 0's prompt is CoOp's context (``SoftPrompt``); the prompt of layer
  i = 1..J-1 overwrites the same positions 1..n before block i.
* **Image tower** (ViTs only): n prompt tokens appended before ``ln_pre``, replaced before
  block i = 1..J-1.
* **IVLP** (independent prompts; PromptSRC's prompt learner): the vision prompts are their own
  parameters. **MaPLe** (coupled): the vision prompt of layer i is a learnt linear map of the
  text prompt of layer i (one ``Linear(text width, vision width)`` per layer), so the image
  loss also trains the text prompts.

Widths come from the loaded model (no ViT-B/16 constants).
"""

import torch
from torch import nn

from clipprompt.clip.backbone import require_backbone
from clipprompt.clip.towers import vision_width
from clipprompt.errors import UserError
from clipprompt.prompts.soft import SoftPrompt

PROMPT_LEARNERS = ("coop", "ivlp", "maple")


class DeepPrompt(SoftPrompt):
    """CoOp's context plus deep text prompts and (optionally) vision prompts.

    ``text_depth`` J_t counts the text layers with prompts, layer 0's context included
    (J_t = 1: CoOp's prompt). ``vision_n_ctx`` = 0 leaves the image tower frozen and
    graph-free. ``coupled`` (MaPLe) derives the vision prompts of each layer from that layer's
    text prompts; it uses the text depth and the text token count for both towers.

    The subclass of ``SoftPrompt`` keeps its state names (``ctx``), so a CoOp checkpoint loads
    into depth-1 prompts and the class-set handling (``set_classnames``) is CoOp's.
    """

    # The config keys the errors name (a trainer passes its own, e.g. TRAINER.MAPLE.PROMPT_DEPTH).
    KEYS = {"N_CTX": "N_CTX", "TEXT_DEPTH": "text prompt depth", "VISION_N_CTX": "vision prompt tokens",
            "VISION_DEPTH": "vision prompt depth"}

    def __init__(self, backbone, classnames, n_ctx=4, ctx_init="a photo of a", text_depth=1,
                 vision_n_ctx=0, vision_depth=1, coupled=False, init_std=0.02, keys=None):
        keys = {**self.KEYS, **(keys or {})}
        require_backbone(backbone)
        try:
            super().__init__(backbone, classnames, n_ctx, ctx_init, csc=False, class_token_position="end",
                             init_std=init_std, learn_init_prefix=True)
        except UserError as exc:
            message = str(exc)
            if message.startswith("N_CTX "):
                message = keys["N_CTX"] + message[len("N_CTX"):]
            raise UserError(message) from None
        text_blocks = len(backbone.transformer.resblocks)
        if not 1 <= text_depth <= text_blocks:
            raise UserError(f"{keys['TEXT_DEPTH']} must lie in 1..{text_blocks} (the text tower's blocks), got {text_depth}")
        dtype, width = backbone.dtype, backbone.width
        self.coupled = coupled
        self.text_depth = text_depth
        self.text_deep = nn.Parameter(torch.empty(text_depth - 1, self.n_ctx, width, dtype=dtype))
        nn.init.normal_(self.text_deep, std=init_std)
        if coupled:
            vision_n_ctx, vision_depth = self.n_ctx, text_depth
        self.vision_n_ctx, self.vision_depth = vision_n_ctx, vision_depth if vision_n_ctx else 0
        self.seq_first = backbone.seq_first
        if vision_n_ctx < 0:
            raise UserError(f"{keys['VISION_N_CTX']} must be >= 0, got {vision_n_ctx}")
        if not vision_n_ctx:
            return
        v_width = vision_width(backbone.visual)
        vision_blocks = len(backbone.visual.transformer.resblocks)
        depth_key = keys["TEXT_DEPTH"] if coupled else keys["VISION_DEPTH"]
        if not 1 <= vision_depth <= vision_blocks:
            raise UserError(f"{depth_key} must lie in 1..{vision_blocks} (the image tower's blocks), got {vision_depth}")
        if coupled:  # one map per layer: layer 0 maps the context, layer i the text prompt of layer i
            self.coupling = nn.ModuleList(nn.Linear(width, v_width) for _ in range(text_depth)).to(dtype)
        else:
            self.vision_first = nn.Parameter(torch.empty(vision_n_ctx, v_width, dtype=dtype))
            self.vision_deep = nn.Parameter(torch.empty(vision_depth - 1, vision_n_ctx, v_width, dtype=dtype))
            nn.init.normal_(self.vision_first, std=init_std)
            nn.init.normal_(self.vision_deep, std=init_std)

    def deep_text_prompts(self):
        return self.text_deep if self.text_depth > 1 else None

    def vision_prompts(self):
        """(first (n, w), deeper (J-1, n, w)) or None without vision prompts."""
        if not self.vision_n_ctx:
            return None
        if not self.coupled:
            return self.vision_first, self.vision_deep
        first = self.coupling[0](self.ctx)
        deeper = [layer(prompt) for layer, prompt in zip(self.coupling[1:], self.text_deep)]
        deeper = torch.stack(deeper) if deeper else first.new_zeros((0,) + tuple(first.shape))
        return first, deeper


def build_prompt_learner(kind, backbone, classnames, n_ctx=4, ctx_init="a photo of a", csc=False,
                         class_token_position="end", text_depth=9, vision_n_ctx=4, vision_depth=9,
                         key="PROMPT_LEARNER", keys=None, label=None):
    """``coop`` (``SoftPrompt``), ``ivlp`` or ``maple`` (``DeepPrompt``); the one place that maps the name.
    ``keys``: the config keys of ``DeepPrompt.KEYS`` for its errors; ``label``: the value of ``key`` the
    errors quote, where a method's own name stands for one of these (default ``kind``)."""
    if kind == "coop":
        return SoftPrompt(backbone, classnames, n_ctx, ctx_init, csc, class_token_position)
    if kind not in PROMPT_LEARNERS:
        raise UserError(f"{key} must be one of {', '.join(PROMPT_LEARNERS)}, got {kind!r}")
    if csc or class_token_position != "end":
        raise UserError(f"{key} {label or kind}: deep prompts need a shared context (CSC False) with the class token at "
                        "the end (CLASS_TOKEN_POSITION end)")
    return DeepPrompt(backbone, classnames, n_ctx, ctx_init, text_depth=text_depth, vision_n_ctx=vision_n_ctx,
                      vision_depth=vision_depth, coupled=kind == "maple", keys=keys)
