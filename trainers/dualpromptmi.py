import torch
from dassl.engine import TRAINER_REGISTRY

from clipprompt.dualprompt import DualPromptMICLIP, DualPromptMIConfig

from .base import PromptTrainer


@TRAINER_REGISTRY.register()
class DualPromptMI(PromptTrainer):
    """Soft + hand-crafted textual views with MI maximisation and class-wise mixup."""

    CONFIG_KEY = "DUALPROMPTMI"
    CLASS_DEPENDENT_PREFIXES = DualPromptMICLIP.CLASS_DEPENDENT_PREFIXES

    @classmethod
    def prompt_depths(cls, cfg):
        o, key = cfg.TRAINER.DUALPROMPTMI, "TRAINER.DUALPROMPTMI.DEEP."
        if o.PROMPT_LEARNER == "maple":  # coupled: the text depth for both towers
            return [(key + "TEXT_DEPTH", "text", o.DEEP.TEXT_DEPTH), (key + "TEXT_DEPTH", "image", o.DEEP.TEXT_DEPTH)]
        if o.PROMPT_LEARNER != "ivlp":
            return []
        depths = [(key + "TEXT_DEPTH", "text", o.DEEP.TEXT_DEPTH)]
        if o.DEEP.VISION_N_CTX > 0:
            depths.append((key + "VISION_DEPTH", "image", o.DEEP.VISION_DEPTH))
        return depths

    def build_prompt_model(self, clip_model, classnames):
        o = self.options
        templates = self.hand_view_templates()
        return DualPromptMICLIP(clip_model, classnames, templates, DualPromptMIConfig.from_cfg(o))

    def compute_loss(self, image, label):
        return self.model.loss(image, label)

    def before_train(self):
        super().before_train()
        cfg = self.model.config
        if cfg.uses_mixup and cfg.aug_prototypes == "precomputed" and self.start_epoch == 0:
            self.compute_prototypes()

    @torch.no_grad()
    def compute_prototypes(self):
        """One pass over the few-shot training set: per-class mean image feature."""
        self.model.prototypes.reset()
        for batch in self.train_loader_x:
            image, label = self.parse_batch_train(batch)
            self.model.observe(self.model.encode_image(image), label)
        print(f"Class prototypes from {int(self.model.prototypes.count.sum())} training images")
