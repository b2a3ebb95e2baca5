"""Frozen hand-crafted prompts ("a photo of a {}."), encoded once per class set."""

import torch
import torch.nn.functional as F

from clipprompt.clip.backbone import require_backbone
from clipprompt.clip.towers import TextEncoder
from clipprompt.errors import UserError
from clipprompt.prompts.templates import fill


# How several templates' features become one per class:
#   "unit": normalise each template's features, average, normalise again (CLIP's prompt ensembling);
#   "raw":  average the unnormalised features, normalise once (the official PromptSRC teacher,
#           trainers/promptsrc.py of muzairkhattak/PromptSRC: templates with larger feature norms weigh more).
# With one template both give the same features.
ENSEMBLE_RULES = ("unit", "raw")


@torch.no_grad()
def encode_hand_crafted(backbone, classnames, templates, ensemble="unit"):
    """Frozen, L2-normalised text features of hand-crafted prompts, (C, D).

    With several templates, ``ensemble`` (one of :data:`ENSEMBLE_RULES`) says how they are averaged.
    """
    if ensemble not in ENSEMBLE_RULES:
        raise ValueError(f"ensemble must be one of {ENSEMBLE_RULES}, got {ensemble!r}")
    if isinstance(templates, str):
        templates = [templates]
    if not templates:
        raise UserError("no hand-crafted prompt template given")
    encoder = TextEncoder(require_backbone(backbone))  # the one text encoder: same short pass as the soft prompts
    per_template = []
    for template in templates:
        texts = [fill(template, name) for name in classnames]
        tokens = backbone.tokenize(texts).to(backbone.token_embedding.weight.device)
        features = encoder(backbone.token_embedding(tokens), tokens)
        features = features.float()
        per_template.append(F.normalize(features, dim=-1) if ensemble == "unit" else features)
    mean = torch.stack(per_template).mean(dim=0)
    return F.normalize(mean, dim=-1)


@torch.no_grad()
def encode_hand_crafted_per_template(backbone, classnames, templates):
    """Frozen, L2-normalised text features of each hand-crafted template, (K, C, D).

    What :func:`encode_hand_crafted` averages; for estimators that treat every
    template's embedding of a class as its own positive (DualPromptMI's
    ``views_nce``). ``F.normalize(result.mean(0))`` is the ensembled view.
    """
    if isinstance(templates, str):
        templates = [templates]
    if not templates:
        raise UserError("no hand-crafted prompt template given")
    return torch.stack([encode_hand_crafted(backbone, classnames, [template]) for template in templates])
