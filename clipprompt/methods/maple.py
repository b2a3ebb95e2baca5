"""MaPLe: Multi-modal Prompt Learning (Khattak et al., CVPR 2023): coupled deep prompts, cross-entropy.

``DeepPromptCLIP`` is the deep vision-language prompt model (:class:`clipprompt.prompts.deep.DeepPrompt`):
with ``coupled`` it is MaPLe, without it IVLP (PromptSRC's prompts, :mod:`clipprompt.methods.promptsrc`).
"""

from dataclasses import dataclass

from clipprompt.methods.base import PromptLearnerCLIP
from clipprompt.methods.options import Options, option
from clipprompt.methods.registry import Method, register
from clipprompt.prompts.deep import DeepPrompt


class DeepPromptCLIP(PromptLearnerCLIP):
    """Deep vision-language prompts: IVLP, or MaPLe with ``coupled``; trained with cross-entropy."""

    def __init__(self, backbone, classnames, n_ctx=4, ctx_init="a photo of a", text_depth=9,
                 vision_n_ctx=4, vision_depth=9, coupled=False, keys=None):
        super().__init__(backbone, None)
        self.prompt_learner = DeepPrompt(self.backbone, classnames, n_ctx, ctx_init, text_depth=text_depth,
                                         vision_n_ctx=vision_n_ctx, vision_depth=vision_depth, coupled=coupled,
                                         keys=keys)


@dataclass
class MaPLeOptions(Options):
    """Defaults: the paper's published base-to-new ViT-B/16 setting (docs/methods.md)."""

    n_ctx: int = option(2, "N_CTX", "learnt tokens per layer (both towers): the first N_CTX tokens of CTX_INIT")
    ctx_init: str = option("a photo of a", "CTX_INIT", 'the rest of the phrase stays fixed text ("of a")')
    prompt_depth: int = option(9, "PROMPT_DEPTH", "layers with prompts, the input layer included (1 = shallow)")

    def prompt_depths(self):
        return [("PROMPT_DEPTH", "text", self.prompt_depth), ("PROMPT_DEPTH", "image", self.prompt_depth)]


KEY = "TRAINER.MAPLE."


def build(backbone, classnames, o, context):
    keys = {"N_CTX": KEY + "N_CTX", "TEXT_DEPTH": KEY + "PROMPT_DEPTH"}
    return DeepPromptCLIP(backbone, classnames, n_ctx=o.n_ctx, ctx_init=o.ctx_init, text_depth=o.prompt_depth,
                          coupled=True, keys=keys)


METHOD = register(Method(
    name="MaPLe", config_key="MAPLE", options=MaPLeOptions, build=build,
    summary="Multi-modal Prompt Learning (Khattak et al., CVPR 2023): coupled deep prompts, cross-entropy"))
