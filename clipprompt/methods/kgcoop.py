"""KgCoOp: Knowledge-guided Context Optimization (Yao et al., CVPR 2023).

CoOp trained with ``CE + W * (1 - mean_c cos(t_c^soft, t_c^hand))``
(:func:`clipprompt.objectives.guidance.knowledge_guidance`); it infers with the soft prompt alone.
The hand-crafted view is encoded once per class set into a non-persistent buffer: checkpoints
hold only the context, and a model built on new classes has its own view.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from clipprompt.methods.coop import CoOpCLIP
from clipprompt.methods.options import SoftPromptOptions, option
from clipprompt.methods.registry import Method, register
from clipprompt.objectives.guidance import knowledge_guidance
from clipprompt.prompts.hand import encode_hand_crafted


class HandViewCoOp(CoOpCLIP):
    """CoOp plus a frozen hand-crafted text view of the same class set (KgCoOp, ProGrad)."""

    def __init__(self, backbone, classnames, hand_templates, n_ctx=4, ctx_init="a photo of a", csc=False,
                 class_token_position="end"):
        super().__init__(backbone, classnames, n_ctx, ctx_init, csc, class_token_position)
        self.register_buffer("hand_features", encode_hand_crafted(self.backbone, classnames, hand_templates),
                             persistent=False)


class KgCoOpCLIP(HandViewCoOp):
    """CoOp trained with KgCoOp's knowledge-guidance term; W = 0 is CoOp exactly."""

    def __init__(self, backbone, classnames, hand_templates, weight=8.0, **prompt):
        super().__init__(backbone, classnames, hand_templates, **prompt)
        self.weight = float(weight)

    def loss(self, image, labels):
        text = self.compute_text_features()
        logits = self.logits(self.encode_image(image), text)
        ce = F.cross_entropy(logits, labels)
        kg = knowledge_guidance(text, self.hand_features)
        return ce + self.weight * kg, logits, {"ce": ce.detach(), "kg": kg.detach()}


@dataclass
class HandViewOptions(SoftPromptOptions):
    """CoOp's keys at the peers' published 4 tokens from "a photo of a", plus the hand-crafted prompts."""

    n_ctx: int = option(4, "N_CTX", "learnt context tokens")
    ctx_init: str = option("a photo of a", "CTX_INIT", 'e.g. "a photo of a" (then N_CTX = its token count)')
    hand_templates: list = option(["dataset"], "HAND_TEMPLATES",
                                  "KgCoOp: the hand view; ProGrad: the zero-shot teacher's prompts "
                                  "(entries as in DUALPROMPTMI.HAND_TEMPLATES)")


@dataclass
class KgCoOpOptions(HandViewOptions):
    w: float = option(8.0, "W", "weight of 1 - mean_c cos(t_c^soft, t_c^hand); 0 = CoOp")

    def validate(self, prefix=""):
        super().validate(prefix)
        self.check_non_negative(prefix, W=self.w)
        return self


def build(backbone, classnames, o, context):
    templates = context.templates(o.hand_templates, "Hand-crafted view")
    return KgCoOpCLIP(backbone, classnames, templates, weight=o.w, **o.prompt())


METHOD = register(Method(
    name="KgCoOp", config_key="KGCOOP", options=KgCoOpOptions, build=build,
    summary="Knowledge-guided Context Optimization (Yao et al., CVPR 2023)"))
