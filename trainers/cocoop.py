from dassl.engine import TRAINER_REGISTRY

from clipprompt.methods.models import CoCoOpCLIP

from .base import PromptTrainer


@TRAINER_REGISTRY.register()
class CoCoOp(PromptTrainer):
    """Conditional Context Optimization (Zhou et al., CVPR 2022)."""

    CONFIG_KEY = "COCOOP"

    def build_prompt_model(self, clip_model, classnames):
        o = self.options
        return CoCoOpCLIP(clip_model, classnames, n_ctx=o.N_CTX, ctx_init=o.CTX_INIT)
