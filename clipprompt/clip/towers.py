"""CLIP's two towers with prompts put in: the one place where prompts enter CLIP.

Text: :class:`TextEncoder` runs the text tower on prompt *embeddings*, with deep prompts
replacing the context slots between blocks. Image: :func:`encode_images` runs the image tower,
with vision prompts appended before ``ln_pre`` and replaced between blocks
(:func:`prompted_vision`). Both read the loaded model through its adapter
(:mod:`clipprompt.clip.backbone`) and run CLIP's own modules unchanged.

The text tower on prompt *embeddings* rather than token ids:

Learnable prompts live in embedding space, so the text encoder has to accept
embeddings; the token ids are still needed to find each prompt's EOT token.

Two things keep it cheap without changing a single output:

* **Short passes.** The tower is causal and a prompt's feature is the hidden
  state at its EOT token, so positions after the last EOT of the batch cannot
  change any feature. The tower runs on the first ``L = max EOT index + 1``
  positions (about 10-16 of CLIP's 77 for a CoOp prompt), with the positional
  embedding cut to ``L``; OpenAI's blocks cut their causal mask to the input
  length (``clip-anytorch`` slices ``attn_mask`` to the last ``L`` rows and
  columns, which for a causal mask is the causal mask of size ``L``); open_clip's
  blocks get the model's causal mask cut to ``L x L`` here.
* **Chunks** (``chunk_size`` K > 0, ``MODEL.TEXT_CHUNK_SIZE``). Prompts go through
  the tower K at a time under activation checkpointing, so a training step keeps
  the activations of one chunk instead of all C (or B*C) prompts and its memory
  stops growing with the class count; backward recomputes each chunk once.

**Deep prompts** (IVLP, MaPLe; :mod:`clipprompt.prompts.deep`): before block i = 1..J-1 the
positions ``1..n`` (the context, all before every EOT) are overwritten by the
learnt prompt of that layer. They stay inside the short pass, so it stays exact.
The blocks are then run one at a time (CLIP's own modules, as loaded); the
prompts travel as arguments, so chunked checkpointing recomputes them right.

**Vision prompts** (ViTs only). n prompt tokens are appended after the patch tokens, after the
positional embedding and before ``ln_pre`` (197 -> 197 + n tokens at ViT-B/16); before block
i = 1..J-1 the last n tokens are replaced by layer i's prompt; after layer J-1 they stay and
propagate. The class token still gives the feature. Forward pre-hooks on ``ln_pre`` and on the
blocks do it, registered for one pass and removed in ``finally``, so the frozen passes (zero-shot
teachers, the hand-crafted view) run the plain tower. Prompts are cast to the activations' dtype
inside the hooks (fp32, fp16 and autocast alike).
"""

import contextlib
import warnings

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from clipprompt.clip.backbone import Backbone, project_text, require_backbone
from clipprompt.errors import UserError


def check_chunk_size(value, key="MODEL.TEXT_CHUNK_SIZE"):
    """0 (one pass) or a positive int; anything else is a one-line UserError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{key} must be 0 (one pass) or a positive integer, got {value!r}")
    return value


class TextEncoder(nn.Module):
    """Shares (does not copy) the frozen text tower of a CLIP model (see ``backbone.py``).

    ``full_context = True`` runs all positions (the reference the tests compare
    with, and the "before" of ``tools/bench.py``).
    """

    def __init__(self, backbone, chunk_size=0):
        super().__init__()
        self.backbone = require_backbone(backbone)
        # The adapter's text parts, registered here so that they move with the prompt model.
        for name in Backbone.TEXT_PARTS:
            setattr(self, name, getattr(backbone, name))
        if backbone.causal_mask is not None:  # open_clip: passed to the blocks; moves with .to(device)
            self.register_buffer("causal_mask", backbone.causal_mask, persistent=False)
        self.chunk_size = chunk_size
        self.full_context = self.seq_first and not _blocks_accept_shorter_input(self.transformer, self.dtype)
        if self.full_context:
            warnings.warn("this version of clip's ResidualAttentionBlock does not cut its attention mask "
                          "to the input length; the text encoder runs all context positions")

    @property
    def dtype(self):
        return self.backbone.dtype

    @property
    def seq_first(self):
        return self.backbone.seq_first

    @property
    def chunk_size(self):
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, value):
        self._chunk_size = check_chunk_size(value)

    def forward(self, prompt_embeddings, tokenized_prompts, deep_prompts=None):
        """``prompt_embeddings`` (N, L, width), ``tokenized_prompts`` (N, L) -> (N, embed_dim).

        ``deep_prompts``: None, or (J-1, n, width), the prompts that replace positions 1..n
        before blocks 1..J-1 (see the module docstring).
        """
        eot = tokenized_prompts.argmax(dim=-1)
        length = prompt_embeddings.shape[1]
        if not self.full_context:
            length = min(length, int(eot.max()) + 1)
        x = prompt_embeddings[:, :length]
        size = self.chunk_size
        if deep_prompts is not None and len(deep_prompts) >= len(self.transformer.resblocks):
            raise UserError(f"{len(deep_prompts) + 1} layers of text prompts do not fit a text tower of "
                            f"{len(self.transformer.resblocks)} blocks; lower the prompt depth")
        if deep_prompts is not None and len(deep_prompts) == 0:
            deep_prompts = None
        if not size or x.shape[0] <= size:
            return self._encode(x, eot, deep_prompts)
        remat = torch.is_grad_enabled() and x.requires_grad
        parts = []
        for start in range(0, x.shape[0], size):
            x_i, eot_i = x[start:start + size], eot[start:start + size]
            if remat:
                parts.append(checkpoint(self._encode, x_i, eot_i, deep_prompts, use_reentrant=False))
            else:
                parts.append(self._encode(x_i, eot_i, deep_prompts))
        return torch.cat(parts)

    def _encode(self, x, eot, deep_prompts=None):
        length = x.shape[1]
        x = x.type(self.dtype) + self.positional_embedding[:length].type(self.dtype)
        if deep_prompts is not None:
            x = self._run_blocks_with_prompts(x, deep_prompts)
        elif self.seq_first:  # OpenAI's transformer: sequence-first, owns its mask
            x = x.permute(1, 0, 2)
            x = self.transformer(x)
            x = x.permute(1, 0, 2)
        else:  # open_clip's: batch-first in, the causal mask as an argument
            x = self.transformer(x, attn_mask=self.causal_mask[:length, :length])
        x = self.ln_final(x).type(self.dtype)
        return project_text(x[torch.arange(x.shape[0], device=x.device), eot], self.text_projection)


    def _run_blocks_with_prompts(self, x, deep_prompts):
        """CLIP's blocks one by one on batch-first ``x``, the context slots replaced between blocks."""
        length = x.shape[1]
        mask = None if self.seq_first else self.causal_mask[:length, :length]
        seq_first = blocks_are_seq_first(self.transformer, self.seq_first)
        if seq_first:
            x = x.permute(1, 0, 2)
        for index, block in enumerate(self.transformer.resblocks):
            if 1 <= index <= len(deep_prompts):
                x = replace_context(x, deep_prompts[index - 1], seq_first)
            x = block(x) if mask is None else block(x, attn_mask=mask)
        return x.permute(1, 0, 2) if seq_first else x


def vision_width(visual):
    """Token width of a ViT image tower; a one-line error for towers that take no prompt tokens."""
    ln_pre = getattr(visual, "ln_pre", None)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if ln_pre is None or blocks is None:
        raise UserError(f"vision prompts need a ViT image tower; {type(visual).__name__} has no token sequence "
                        "(use a ViT backbone, or the coop prompt learner)")
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        raise UserError(f"vision prompts need an image tower pooled at its class token; {type(visual).__name__} "
                        f"pools with {getattr(visual, 'pool_type', 'attention')!r} (use the coop prompt learner)")
    if getattr(visual.transformer, "grad_checkpointing", False):
        raise UserError("vision prompts cannot run under the image tower's gradient checkpointing "
                        "(recomputation would run without the prompts); turn it off")
    return visual.conv1.out_channels


@contextlib.contextmanager
def prompted_vision(visual, first, deeper, seq_first):
    """While open, ``visual(image)`` runs with ``first`` (n, width) appended before ``ln_pre`` and
    ``deeper[i-1]`` (n, width) replacing the last n tokens before block i.

    ``seq_first``: the backbone's layout (OpenAI's blocks are sequence-first).
    """
    n = first.shape[0]
    blocks = visual.transformer.resblocks
    if len(deeper) >= len(blocks):
        raise UserError(f"{len(deeper) + 1} layers of vision prompts do not fit an image tower of {len(blocks)} "
                        "blocks; lower the vision prompt depth")
    in_blocks_seq_first = blocks_are_seq_first(visual.transformer, seq_first)

    def append(module, args):
        x = args[0]  # (N, tokens, width) in both kinds: ln_pre sees batch-first tokens
        prompt = first.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        return (torch.cat([x, prompt], dim=1),) + tuple(args[1:])

    def replacer(prompt):
        def replace(module, args):
            x = args[0]
            if in_blocks_seq_first:  # (tokens, N, width)
                p = prompt.to(x.dtype).unsqueeze(1).expand(-1, x.shape[1], -1)
                x = torch.cat([x[:-n], p], dim=0)
            else:
                p = prompt.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
                x = torch.cat([x[:, :-n], p], dim=1)
            return (x,) + tuple(args[1:])
        return replace

    handles = [visual.ln_pre.register_forward_pre_hook(append)]
    try:
        for index, prompt in enumerate(deeper, start=1):
            handles.append(blocks[index].register_forward_pre_hook(replacer(prompt)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def encode_images(visual, images, dtype, seq_first, prompts=None):
    """The image tower's features of ``images``; ``prompts`` = (first, deeper) puts vision prompts in
    (:func:`prompted_vision`), None runs the plain tower."""
    if prompts is None:
        return visual(images.type(dtype))
    with prompted_vision(visual, *prompts, seq_first=seq_first):
        return visual(images.type(dtype))


def blocks_are_seq_first(transformer, backbone_seq_first):
    """The layout CLIP's blocks see: OpenAI's are sequence-first; open_clip's follow ``batch_first``."""
    return backbone_seq_first or not getattr(transformer, "batch_first", True)


def replace_context(x, prompt, seq_first):
    """``x`` with positions 1..n overwritten by ``prompt`` (n, width), for every row."""
    n = prompt.shape[0]
    if seq_first:  # (L, N, width)
        p = prompt.to(x.dtype).unsqueeze(1).expand(-1, x.shape[1], -1)
        return torch.cat([x[:1], p, x[1 + n:]], dim=0)
    p = prompt.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :1], p, x[:, 1 + n:]], dim=1)


def _blocks_accept_shorter_input(transformer, dtype):
    """Whether CLIP's blocks cut their causal mask to a shorter input (clip-anytorch does; OpenAI's CLIP did not)."""
    block = transformer.resblocks[0]
    if getattr(block, "attn_mask", None) is None:
        return True
    weight = block.ln_1.weight
    probe = torch.zeros(2, 1, weight.shape[0], dtype=dtype, device=weight.device)
    try:
        with torch.no_grad():
            block(probe)
    except RuntimeError as exc:
        if "attn_mask" in str(exc):
            return False
        raise
    return True
