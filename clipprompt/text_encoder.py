"""CLIP's text tower applied to prompt *embeddings* rather than token ids.

Learnable prompts live in embedding space, so the text encoder has to accept
embeddings; the token ids are still needed to find each prompt's EOT token.
"""

import torch
from torch import nn


class TextEncoder(nn.Module):
    """Shares (does not copy) the frozen text tower of a ``clip.model.CLIP``."""

    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype

    def forward(self, prompt_embeddings, tokenized_prompts):
        """``prompt_embeddings`` (N, L, width), ``tokenized_prompts`` (N, L) -> (N, embed_dim)."""
        x = prompt_embeddings.type(self.dtype) + self.positional_embedding.type(self.dtype)
        x = x.permute(1, 0, 2)  # CLIP's transformer is sequence-first
        x = self.transformer(x)
        x = x.permute(1, 0, 2)
        x = self.ln_final(x).type(self.dtype)
        return eot_pool(x, tokenized_prompts) @ self.text_projection


def eot_pool(hidden, tokenized_prompts):
    """Hidden state at each prompt's end-of-text token (the largest token id)."""
    eot = tokenized_prompts.argmax(dim=-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), eot]
