from dassl.engine import TRAINER_REGISTRY

from clipprompt.errors import UserError
from clipprompt.methods.peers import KgCoOpCLIP

from .base import PromptTrainer


@TRAINER_REGISTRY.register()
class KgCoOp(PromptTrainer):
    """Knowledge-guided Context Optimization (Yao et al., CVPR 2023)."""

    CONFIG_KEY = "KGCOOP"

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if cfg.TRAINER.KGCOOP.W < 0:
            raise UserError(f"TRAINER.KGCOOP.W must be >= 0, got {cfg.TRAINER.KGCOOP.W}")

    def build_prompt_model(self, clip_model, classnames):
        o = self.options
        templates = self.hand_view_templates()
        return KgCoOpCLIP(clip_model, classnames, templates, weight=o.W, n_ctx=o.N_CTX, ctx_init=o.CTX_INIT,
                          csc=o.CSC, class_token_position=o.CLASS_TOKEN_POSITION)

    def compute_loss(self, image, label):
        return self.model.loss(image, label)
