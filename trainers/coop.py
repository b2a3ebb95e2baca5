from dassl.engine import TRAINER_REGISTRY

from clipprompt.methods.models import CoOpCLIP

from .base import PromptTrainer


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    """Context Optimization (Zhou et al., IJCV 2022)."""

    CONFIG_KEY = "COOP"

    def build_prompt_model(self, clip_model, classnames):
        o = self.options
        return CoOpCLIP(clip_model, classnames, n_ctx=o.N_CTX, ctx_init=o.CTX_INIT, csc=o.CSC,
                        class_token_position=o.CLASS_TOKEN_POSITION)
