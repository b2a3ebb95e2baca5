"""Zero-shot CLIP with hand-crafted prompts (one template, or the mean over several); nothing is trained."""

from dataclasses import dataclass

from clipprompt.methods.base import PromptCLIP
from clipprompt.methods.options import Options, option
from clipprompt.methods.registry import Method, register
from clipprompt.prompts.hand import encode_hand_crafted


class ZeroShotCLIP(PromptCLIP):
    """Hand-crafted prompts (one template, or the mean over several)."""

    def __init__(self, backbone, classnames, templates):
        super().__init__(backbone)
        self.register_buffer("class_text_features", encode_hand_crafted(self.backbone, classnames, templates),
                             persistent=False)

    def compute_text_features(self):
        return self.class_text_features


@dataclass
class ZeroShotOptions(Options):
    templates: list = option(["dataset"], "TEMPLATES", 'template entries, as HAND_TEMPLATES; ["dataset", '
                                                       '"imagenet_ensemble"] is ZeroshotCLIP2\'s ensemble')


def _build(templates_of):
    def build(backbone, classnames, options, context):
        templates = context.templates(templates_of(options), "Hand-crafted prompts")
        return ZeroShotCLIP(backbone, classnames, templates)
    return build


ZEROSHOT = register(Method(
    name="ZeroshotCLIP", config_key="ZEROSHOTCLIP", options=ZeroShotOptions, trains=False,
    build=_build(lambda options: options.templates),
    summary="CLIP with hand-crafted prompts; TRAINER.ZEROSHOTCLIP.TEMPLATES [\"dataset\"] is the per-dataset template"))

ZEROSHOT_ENSEMBLE = register(Method(
    name="ZeroshotCLIP2", config_key="ZEROSHOTCLIP", options=ZeroShotOptions, trains=False,
    build=_build(lambda options: ("dataset", "imagenet_ensemble")),
    summary="prompt-ensemble zero-shot CLIP (CoOp's name): dataset template + 7 ImageNet templates"))
