"""Prompt construction: learnable context tokens around class names (hand-crafted prompts:
:mod:`clipprompt.prompts.hand`).

A soft prompt for class c is the token sequence ``[SOS] v_1 ... v_M [CLASS_c] . [EOS]``
(CoOp), where ``v_j`` are learnable vectors in CLIP's token-embedding space.
The class token can also sit in the middle of the context or in front of it.
"""

import torch
from torch import nn

from clipprompt.clip.backbone import Backbone, require_backbone
from clipprompt.errors import UserError

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


def tokenize(texts, backbone):
    return require_backbone(backbone).tokenize(texts)


def class_name_length(classname):
    """Number of BPE tokens of a class name (what the class occupies in a prompt)."""
    return Backbone.token_count(classname.replace("_", " "))


def _assembly_index(name_lens, n_ctx, seq_len, position):
    """Per-class gather index that reorders ``[SOS | ctx | name . EOS pad]``.

    Building prompts as one ``gather`` keeps every class-token position
    vectorised over classes (and over images for CoCoOp) instead of looping.
    """
    rows = []
    for name_len in name_lens:
        sos = [0]
        ctx = list(range(1, 1 + n_ctx))
        name = list(range(1 + n_ctx, 1 + n_ctx + name_len))
        rest = list(range(1 + n_ctx + name_len, seq_len))
        if position == "end":
            order = sos + ctx + name + rest
        elif position == "middle":
            half = n_ctx // 2
            order = sos + ctx[:half] + name + ctx[half:] + rest
        else:  # front
            order = sos + name + ctx + rest
        rows.append(order)
    return torch.tensor(rows, dtype=torch.long)


class SoftPrompt(nn.Module):
    """CoOp's learnable context for a fixed class set.

    Persistent state (what checkpoints hold) is only ``ctx``; the token
    embeddings of the class names are non-persistent buffers rebuilt for any
    class set, which is what lets a prompt trained on base classes be evaluated
    on new ones. Class-specific context (``csc``) is tied to its class set.
    """

    def __init__(self, backbone, classnames, n_ctx=16, ctx_init="", csc=False,
                 class_token_position="end", init_std=0.02, learn_init_prefix=False):
        super().__init__()
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise UserError(f"CLASS_TOKEN_POSITION must be one of {', '.join(CLASS_TOKEN_POSITIONS)}, got {class_token_position!r}")
        require_backbone(backbone)
        dtype = backbone.dtype
        ctx_dim = backbone.width
        n_cls = len(classnames)
        if ctx_init:
            ctx_init = ctx_init.replace("_", " ").strip()
            init_len = class_name_length(ctx_init)
            # CoOp: the whole init phrase is the context (N_CTX is ignored). MaPLe (learn_init_prefix):
            # its first N_CTX tokens are learnt and the rest of the phrase stays fixed text.
            if not learn_init_prefix:
                n_ctx = init_len
            elif not 1 <= n_ctx <= init_len:
                raise UserError(f"N_CTX must lie in 1..{init_len} (the tokens of CTX_INIT {ctx_init!r}), got {n_ctx}")
            with torch.no_grad():
                init_embed = backbone.token_embedding(backbone.tokenize(ctx_init)).type(dtype)
            ctx_vectors = init_embed[0, 1:1 + n_ctx].clone()
            if csc:
                ctx_vectors = ctx_vectors.unsqueeze(0).repeat(n_cls, 1, 1)
            prefix_text = ctx_init
        else:
            if n_ctx < 1:
                raise UserError(f"N_CTX must be at least 1 without CTX_INIT, got {n_ctx}")
            shape = (n_cls, n_ctx, ctx_dim) if csc else (n_ctx, ctx_dim)
            ctx_vectors = torch.empty(shape, dtype=dtype)
            nn.init.normal_(ctx_vectors, std=init_std)
            prefix_text = " ".join(["X"] * n_ctx)
        self.ctx = nn.Parameter(ctx_vectors)
        self.n_ctx = n_ctx
        self.csc = csc
        self.prefix_text = prefix_text
        self.class_token_position = class_token_position
        self.set_classnames(backbone, classnames)

    def set_classnames(self, backbone, classnames):
        """(Re)build the class-set-dependent token embeddings."""
        if self.csc and self.ctx.dim() == 3 and self.ctx.shape[0] != len(classnames):
            raise UserError(
                f"class-specific context (CSC) was built for {self.ctx.shape[0]} classes and cannot be used "
                f"for {len(classnames)}; class-specific prompts do not transfer to another class set"
            )
        require_backbone(backbone)
        names = [name.replace("_", " ") for name in classnames]
        prompts = [f"{self.prefix_text} {name}." for name in names]
        tokenized = backbone.tokenize(prompts)
        with torch.no_grad():
            embedding = backbone.token_embedding(tokenized).type(backbone.dtype)
        name_lens = [class_name_length(name) for name in names]
        self.classnames = list(classnames)
        self.register_buffer("tokenized_prompts", tokenized, persistent=False)
        self.register_buffer("token_prefix", embedding[:, :1].clone(), persistent=False)
        self.register_buffer("token_suffix", embedding[:, 1 + self.n_ctx:].clone(), persistent=False)
        index = _assembly_index(name_lens, self.n_ctx, tokenized.shape[1], self.class_token_position)
        self.register_buffer("assembly_index", index, persistent=False)

    @property
    def num_classes(self):
        return self.token_prefix.shape[0]

    def assemble(self, ctx):
        """Prompt embeddings from context ``ctx``.

        ``ctx``: (M, d) shared, (C, M, d) class-specific, or (B, M, d) /
        (B, C, M, d) per image (CoCoOp). Returns (C, L, d) or (B, C, L, d).
        """
        n_cls = self.num_classes
        per_image = ctx.dim() == 4 or (ctx.dim() == 3 and not self.csc)
        if per_image and ctx.dim() == 3:
            ctx = ctx.unsqueeze(1).expand(-1, n_cls, -1, -1)
        elif not per_image and ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(n_cls, -1, -1)
        lead = ctx.shape[:-3] + (n_cls,)
        prefix = self.token_prefix.expand(*lead, -1, -1)
        suffix = self.token_suffix.expand(*lead, -1, -1)
        prompts = torch.cat([prefix, ctx.type(prefix.dtype), suffix], dim=-2)
        if self.class_token_position == "end":
            return prompts
        index = self.assembly_index.expand(*lead, -1).unsqueeze(-1).expand(*lead, -1, prompts.shape[-1])
        return torch.gather(prompts, -2, index)

    def forward(self):
        return self.assemble(self.ctx)

    def deep_text_prompts(self):
        """Prompts of the deeper text layers: none for CoOp (see ``deep_prompts.DeepPrompt``)."""
        return None

    def vision_prompts(self):
        """Prompts of the image tower: none for CoOp (its image tower stays frozen and graph-free)."""
        return None
