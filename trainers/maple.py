from dassl.engine import TRAINER_REGISTRY

from clipprompt.methods.models import DeepPromptCLIP

from .base import PromptTrainer


@TRAINER_REGISTRY.register()
class MaPLe(PromptTrainer):
    """Multi-modal Prompt Learning (Khattak et al., CVPR 2023): coupled deep prompts, cross-entropy."""

    CONFIG_KEY = "MAPLE"

    @classmethod
    def prompt_depths(cls, cfg):
        depth = cfg.TRAINER.MAPLE.PROMPT_DEPTH  # coupled: the same layers of both towers
        return [("TRAINER.MAPLE.PROMPT_DEPTH", "text", depth), ("TRAINER.MAPLE.PROMPT_DEPTH", "image", depth)]

    def build_prompt_model(self, clip_model, classnames):
        o = self.options
        keys = {"N_CTX": "TRAINER.MAPLE.N_CTX", "TEXT_DEPTH": "TRAINER.MAPLE.PROMPT_DEPTH"}
        return DeepPromptCLIP(clip_model, classnames, n_ctx=o.N_CTX, ctx_init=o.CTX_INIT, text_depth=o.PROMPT_DEPTH,
                              coupled=True, keys=keys)
