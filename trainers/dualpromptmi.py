import contextlib

import torch
from dassl.engine import TRAINER_REGISTRY

from clipprompt.methods.dualprompt import DualPromptMICLIP, DualPromptMIConfig

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
        # A frozen image tower (CoOp's context): one pass before training holds for every epoch,
        # and a resumed run has them from its checkpoint.
        if (cfg.uses_mixup and cfg.aug_prototypes == "precomputed" and self.start_epoch == 0
                and not self.model.prototypes_follow_image_tower):
            self.compute_prototypes()

    def before_epoch(self):
        super().before_epoch()
        if not self.model.prototypes_follow_image_tower:
            return
        # Trained vision prompts move the image features: renew the prototypes at every epoch start
        # (a resumed run too, from the restored RNG state, so it repeats the uninterrupted run).
        if self.model.config.aug_prototypes == "precomputed":
            self.compute_prototypes()
        else:  # running: the mean of this epoch's features only
            self.model.prototypes.reset()
            self.statistics.mark()  # zero on every process

    @torch.no_grad()
    def compute_prototypes(self):
        """One no-grad pass over the few-shot training set: per-class mean image feature."""
        batches = (self.parse_batch_train(batch) for batch in self.train_loader_x)
        follows = self.model.prototypes_follow_image_tower
        # Renewed prototypes use the steps' precision (amp: autocast), which is what they describe and
        # what keeps the pass cheap on a GPU; the one pass of a frozen tower stays as it always was.
        with self.autocast() if follows else contextlib.nullcontext():
            self.model.refresh_prototypes(batches)
        self.statistics.sync(from_zero=True)  # under torchrun: each process saw its slice
        when = f" (epoch {self.epoch + 1}, prompted image tower)" if follows else ""
        print(f"Class prototypes from {int(self.model.prototypes.count.sum())} training images{when}")
