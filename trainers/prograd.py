import torch.nn.functional as F
from dassl.engine import TRAINER_REGISTRY
from dassl.metrics import compute_accuracy

from clipprompt.errors import UserError
from clipprompt.methods.peers import ProGradCLIP, prograd_gradients, zero_shot_kl

from .base import PromptTrainer


@TRAINER_REGISTRY.register()
class ProGrad(PromptTrainer):
    """Prompt-aligned gradient (Zhu et al., ICCV 2023): CoOp's CE gradient, its conflict with
    the zero-shot KL gradient projected out; the KL is never added to the loss."""

    CONFIG_KEY = "PROGRAD"

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        o = cfg.TRAINER.PROGRAD
        if o.LAMBDA < 0:
            raise UserError(f"TRAINER.PROGRAD.LAMBDA must be >= 0, got {o.LAMBDA}")
        if o.T <= 0:
            raise UserError(f"TRAINER.PROGRAD.T must be > 0, got {o.T}")

    def build_prompt_model(self, clip_model, classnames):
        o = self.options
        templates = self.hand_view_templates("Zero-shot teacher prompts")
        return ProGradCLIP(clip_model, classnames, templates, n_ctx=o.N_CTX, ctx_init=o.CTX_INIT, csc=o.CSC,
                           class_token_position=o.CLASS_TOKEN_POSITION)

    def global_gradients(self, grads):
        """The global batch's gradients under torchrun (PromptTrainer.reduce_gradients); else ``grads``."""
        for param, grad in zip(self.trainable_params, grads):
            param.grad = grad
        self.reduce_gradients()
        return [param.grad for param in self.trainable_params]

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        o = self.options
        with self.autocast():
            logits, teacher = self.model.student_and_teacher_logits(image)
            ce = F.cross_entropy(logits, label)
            kl = zero_shot_kl(logits, teacher, o.T)
        self.detect_anomaly(ce)
        self.detect_anomaly(kl)
        params = self.trainable_params
        # amp: both losses carry the same scale, and the projection is scale-invariant,
        # so the scaler's unscale/inf check in step() is all amp needs.
        scale = self.scaler.scale if self.scaler is not None else (lambda loss: loss)
        grads = prograd_gradients(scale(ce), scale(kl), params, o.LAMBDA, reduce=self.global_gradients)
        for param, grad in zip(params, grads):
            param.grad = grad
        if self.scaler is not None:
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            self.optim.step()
        summary = {"loss": ce.item(), "kl": kl.item(), "acc": compute_accuracy(logits, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary
