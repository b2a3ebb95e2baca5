"""PromptSRC's self-regulating terms (Khattak et al., ICCV 2023): consistency with frozen CLIP.

For prompted features (text ``t``, image ``v``, logits ``z``) and frozen CLIP's (the teacher's
ensemble text ``t0``, image ``v0``, zero-shot logits ``z0``):
``L1(t, t0)``, ``L1(v, v0)`` (means over all elements) and ``KL(softmax z0 || softmax z)`` summed
and divided by B*C, as the official code divides (``reduction="sum"`` over ``logits.numel()``).
"""

import torch.nn.functional as F


def consistency_terms(text, teacher_text, image_features, frozen_image, logits, zero_shot_logits):
    """(text L1, image L1, KL) of PromptSRC's regulariser."""
    text_l1 = F.l1_loss(text, teacher_text)
    image_l1 = F.l1_loss(image_features, frozen_image)
    kl = F.kl_div(F.log_softmax(logits, dim=-1), F.log_softmax(zero_shot_logits, dim=-1), reduction="sum",
                  log_target=True) / logits.numel()
    return text_l1, image_l1, kl
