import time

from dassl.engine import TRAINER_REGISTRY

from clipprompt.methods.models import ZeroShotCLIP as ZeroShotModel

from .base import PromptTrainer


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(PromptTrainer):
    """CLIP with hand-crafted prompts; nothing is trained.

    ``TRAINER.ZEROSHOTCLIP.TEMPLATES`` ["dataset"] is the per-dataset template;
    ["dataset", "imagenet_ensemble"] is the prompt ensemble (``ZeroshotCLIP2``).
    """

    CONFIG_KEY = "ZEROSHOTCLIP"
    TEMPLATES = None  # None: from the config

    def build_prompt_model(self, clip_model, classnames):
        entries = self.TEMPLATES or self.options.TEMPLATES
        templates = self.hand_crafted_templates(entries)
        print(f"Hand-crafted prompts: {templates}")
        return ZeroShotModel(clip_model, classnames, templates)

    def train(self):
        """Nothing to learn: evaluate and record the result like any run."""
        self.time_start = time.time()
        self.test()

    def load_model(self, directory, epoch=None):
        if directory:
            print("Note: ZeroshotCLIP has no trained weights; --model-dir is ignored")


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt-ensemble zero-shot CLIP (CoOp's name): dataset template + 7 ImageNet templates."""

    TEMPLATES = ("dataset", "imagenet_ensemble")
