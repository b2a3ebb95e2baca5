from dassl.engine import TRAINER_REGISTRY

from clipprompt.methods.promptsrc import PromptSRCCLIP

from .base import PromptTrainer


@TRAINER_REGISTRY.register()
class PromptSRC(PromptTrainer):
    """Self-regulating prompts (Khattak et al., ICCV 2023): IVLP prompts, consistency with frozen CLIP,
    Gaussian prompt aggregation over epochs (clipprompt/methods/promptsrc.py)."""

    CONFIG_KEY = "PROMPTSRC"

    @classmethod
    def prompt_depths(cls, cfg):
        o = cfg.TRAINER.PROMPTSRC
        depths = [("TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "text", o.PROMPT_DEPTH_TEXT)]
        if o.N_CTX_VISION > 0:
            depths.append(("TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "image", o.PROMPT_DEPTH_VISION))
        return depths

    def build_prompt_model(self, clip_model, classnames):
        o = self.options
        templates = self.hand_view_templates("Frozen text teacher")
        gpa = (self.cfg.OPTIM.MAX_EPOCH, o.GPA_MEAN, o.GPA_STD) if o.GPA else None
        return PromptSRCCLIP(
            clip_model, classnames, templates, text_weight=o.TEXT_LOSS_WEIGHT, image_weight=o.IMAGE_LOSS_WEIGHT,
            kl_weight=o.KL_LOSS_WEIGHT, gpa=gpa, n_ctx=o.N_CTX_TEXT, ctx_init=o.CTX_INIT,
            text_depth=o.PROMPT_DEPTH_TEXT, vision_n_ctx=o.N_CTX_VISION, vision_depth=o.PROMPT_DEPTH_VISION,
            keys={name: f"TRAINER.PROMPTSRC.{key}" for name, key in (
                ("N_CTX", "N_CTX_TEXT"), ("TEXT_DEPTH", "PROMPT_DEPTH_TEXT"), ("VISION_N_CTX", "N_CTX_VISION"),
                ("VISION_DEPTH", "PROMPT_DEPTH_VISION"))})

    def compute_loss(self, image, label):
        return self.model.loss(image, label)

    def after_epoch(self):
        # Before Dassl's after_epoch, which saves the last epoch's checkpoint: after the last
        # epoch the prompts become the aggregate, so that checkpoint and the final test use it.
        if self.model.end_epoch(self.epoch + 1):
            print(f"Gaussian prompt aggregation: the prompts are the weighted mean over {self.max_epoch} epochs")
        super().after_epoch()
