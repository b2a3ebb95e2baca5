"""CoOp: Context Optimization (Zhou et al., IJCV 2022): one learnable context (or one per class)."""

from dataclasses import dataclass

from clipprompt.methods.base import PromptLearnerCLIP
from clipprompt.methods.options import SoftPromptOptions
from clipprompt.methods.registry import Method, register
from clipprompt.prompts.soft import SoftPrompt


class CoOpCLIP(PromptLearnerCLIP):
    """CoOp: one learnable context (or one per class) shared by all images."""

    def __init__(self, backbone, classnames, n_ctx=16, ctx_init="", csc=False, class_token_position="end"):
        super().__init__(backbone, None)
        self.prompt_learner = SoftPrompt(self.backbone, classnames, n_ctx, ctx_init, csc, class_token_position)


@dataclass
class CoOpOptions(SoftPromptOptions):
    pass


METHOD = register(Method(
    name="CoOp", config_key="COOP", options=CoOpOptions,
    build=lambda backbone, classnames, o, context: CoOpCLIP(backbone, classnames, **o.prompt()),
    summary="Context Optimization (Zhou et al., IJCV 2022)",
    published={"n_ctx": 4, "ctx_init": "a photo of a"}))
