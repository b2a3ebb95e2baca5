"""ProGrad: prompt-aligned gradient (Zhu et al., ICCV 2023).

CoOp's cross-entropy gradient with its conflict with the zero-shot KL gradient projected out
(:func:`clipprompt.objectives.guidance.prograd_gradients`); the KL is never added to the loss.
The zero-shot teacher is the same frozen CLIP with the hand-crafted prompts.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clipprompt.errors import UserError
from clipprompt.methods.kgcoop import HandViewCoOp, HandViewOptions
from clipprompt.methods.options import option
from clipprompt.methods.registry import Method, register
from clipprompt.objectives.guidance import prograd_gradients, zero_shot_kl


class ProGradCLIP(HandViewCoOp):
    """CoOp whose zero-shot teacher is the same frozen CLIP with the hand-crafted prompts."""

    def __init__(self, backbone, classnames, hand_templates, lam=1.0, temperature=1.0, **prompt):
        super().__init__(backbone, classnames, hand_templates, **prompt)
        self.lam, self.temperature = float(lam), float(temperature)

    def student_and_teacher_logits(self, image):
        image_features = self.encode_image(image)
        with torch.no_grad():
            teacher = self.logits(image_features, self.hand_features)
        return self.logits(image_features, self.text_features()), teacher

    def loss(self, image, labels):
        """The loss is the cross-entropy; the KL travels in ``terms`` to :meth:`backward`."""
        logits, teacher = self.student_and_teacher_logits(image)
        return F.cross_entropy(logits, labels), logits, {"kl": zero_shot_kl(logits, teacher, self.temperature)}

    def backward(self, loss, terms, params, step):
        # amp: both losses carry the same scale, and the projection is scale-invariant,
        # so the scaler's unscale/inf check in step() is all amp needs.
        kl = terms["kl"]
        if not torch.isfinite(kl).all():
            raise FloatingPointError("Loss is infinite or NaN!")
        grads = prograd_gradients(step.scale(loss), step.scale(kl), params, self.lam, reduce=step.reduce)
        for param, grad in zip(params, grads):
            param.grad = grad


@dataclass
class ProGradOptions(HandViewOptions):
    lam: float = option(1.0, "LAMBDA", "share of the conflicting component removed (1 = all of it)")
    t: float = option(1.0, "T", "temperature of the zero-shot KL")

    def validate(self, prefix=""):
        super().validate(prefix)
        self.check_non_negative(prefix, LAMBDA=self.lam)
        if self.t <= 0:
            raise UserError(f"{prefix}T must be > 0, got {self.t}")
        return self


def build(backbone, classnames, o, context):
    templates = context.templates(o.hand_templates, "Zero-shot teacher prompts")
    return ProGradCLIP(backbone, classnames, templates, lam=o.lam, temperature=o.t, **o.prompt())


METHOD = register(Method(
    name="ProGrad", config_key="PROGRAD", options=ProGradOptions, build=build,
    summary="Prompt-aligned gradient (Zhu et al., ICCV 2023)"))
