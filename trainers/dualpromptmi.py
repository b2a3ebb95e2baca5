import torch
from dassl.engine import TRAINER_REGISTRY

from clipprompt.dualprompt import DualPromptMICLIP, DualPromptMIConfig

from .base import PromptTrainer


def dualpromptmi_config(node):
    """yacs ``TRAINER.DUALPROMPTMI`` -> the model's plain config."""
    return DualPromptMIConfig(
        n_ctx=node.N_CTX, ctx_init=node.CTX_INIT, csc=node.CSC,
        class_token_position=node.CLASS_TOKEN_POSITION, infer_weight=float(node.INFER_WEIGHT),
        mi_weight=float(node.MI.WEIGHT), mi_mode=node.MI.MODE, mi_estimator=node.MI.ESTIMATOR,
        mi_tau=float(node.MI.TAU), mi_learn_tau=node.MI.LEARN_TAU,
        mi_learn_temperature=node.MI.LEARN_TEMPERATURE, aug_weight=float(node.AUG.WEIGHT),
        aug_mode=node.AUG.MODE, aug_alpha=float(node.AUG.ALPHA),
        aug_mi_weight=float(node.AUG.MI_WEIGHT), aug_prototypes=node.AUG.PROTOTYPES,
    )


@TRAINER_REGISTRY.register()
class DualPromptMI(PromptTrainer):
    """Soft + hand-crafted textual views with MI maximisation and class-wise mixup."""

    CONFIG_KEY = "DUALPROMPTMI"
    CLASS_DEPENDENT_PREFIXES = DualPromptMICLIP.CLASS_DEPENDENT_PREFIXES

    def build_prompt_model(self, clip_model, classnames):
        o = self.options
        self.CLASS_SPECIFIC_CONTEXT = bool(o.CSC)
        templates = self.hand_crafted_templates(o.HAND_TEMPLATES)
        print(f"Hand-crafted view: {templates}")
        return DualPromptMICLIP(clip_model, classnames, templates, dualpromptmi_config(o))

    def compute_loss(self, image, label):
        return self.model.loss(image, label)

    def before_train(self):
        super().before_train()
        cfg = self.model.config
        if cfg.aug_weight > 0 and cfg.aug_prototypes == "precomputed" and self.start_epoch == 0:
            self.compute_prototypes()

    @torch.no_grad()
    def compute_prototypes(self):
        """One pass over the few-shot training set: per-class mean image feature."""
        self.model.prototypes.reset()
        for batch in self.train_loader_x:
            image, label = self.parse_batch_train(batch)
            self.model.observe(self.model.encode_image(image), label)
        print(f"Class prototypes from {int(self.model.prototypes.count.sum())} training images")
