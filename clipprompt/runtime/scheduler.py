"""Epoch-wise learning-rate schedules with Dassl's semantics.

Dassl's warmup schedulers pass ``verbose`` to ``LRScheduler.__init__`` (a
TypeError on current torch) and pickle their successor scheduler into
checkpoints (refused by ``torch.load(weights_only=True)``). This scheduler
computes the same learning rates in closed form and keeps only numbers in
its state, so checkpoints stay safe to load.
"""

import bisect
import math

from clipprompt.errors import UserError

SCHEDULERS = ("single_step", "multi_step", "cosine")
WARMUPS = ("constant", "linear")


class EpochLRScheduler:
    """Sets each param group's lr for the current epoch; ``step()`` once per epoch.

    Epochs ``e < warmup_epoch``: constant ``cons_lr`` (or linear from ``min_lr``).
    Then the main schedule, counted from the end of the warmup when
    ``warmup_recount`` (Dassl's default), from epoch 0 otherwise. Cosine:
    ``lr = base * (1 + cos(pi * k / max_epoch)) / 2``.
    """

    def __init__(self, optimizer, name="cosine", max_epoch=1, stepsize=(-1,), gamma=0.1,
                 warmup_epoch=-1, warmup_type="constant", warmup_cons_lr=1e-5,
                 warmup_min_lr=1e-5, warmup_recount=True):
        if name not in SCHEDULERS:
            raise UserError(f"OPTIM.LR_SCHEDULER must be one of {', '.join(SCHEDULERS)}, got {name!r}")
        if warmup_epoch > 0 and warmup_type not in WARMUPS:
            raise UserError(f"OPTIM.WARMUP_TYPE must be one of {', '.join(WARMUPS)}, got {warmup_type!r}")
        self.optimizer = optimizer
        self.name = name
        self.max_epoch = max(int(max_epoch), 1)
        self.stepsize = list(stepsize) if isinstance(stepsize, (list, tuple)) else [stepsize]
        self.gamma = gamma
        self.warmup_epoch = int(warmup_epoch)
        self.warmup_type = warmup_type
        self.warmup_cons_lr = warmup_cons_lr
        self.warmup_min_lr = warmup_min_lr
        self.warmup_recount = warmup_recount
        self.base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, epoch, base_lr):
        if epoch < self.warmup_epoch:
            if self.warmup_type == "constant":
                return self.warmup_cons_lr
            return self.warmup_min_lr if epoch == 0 else base_lr * epoch / self.warmup_epoch
        k = epoch
        if self.warmup_epoch > 0 and self.warmup_recount:
            k = epoch - self.warmup_epoch
        if self.name == "cosine":
            return base_lr * (1 + math.cos(math.pi * k / self.max_epoch)) / 2
        if self.name == "single_step":
            size = self.stepsize[-1] if self.stepsize[-1] > 0 else self.max_epoch
            return base_lr * self.gamma ** (k // size)
        return base_lr * self.gamma ** bisect.bisect_right(sorted(self.stepsize), k)

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_epoch, base)

    def step(self):
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = list(state["base_lrs"])
        self._apply()


def build_lr_scheduler(optimizer, optim_cfg):
    """From Dassl's ``OPTIM`` config node."""
    return EpochLRScheduler(
        optimizer,
        name=optim_cfg.LR_SCHEDULER,
        max_epoch=optim_cfg.MAX_EPOCH,
        stepsize=optim_cfg.STEPSIZE,
        gamma=optim_cfg.GAMMA,
        warmup_epoch=optim_cfg.WARMUP_EPOCH,
        warmup_type=optim_cfg.WARMUP_TYPE,
        warmup_cons_lr=optim_cfg.WARMUP_CONS_LR,
        warmup_min_lr=optim_cfg.WARMUP_MIN_LR,
        warmup_recount=optim_cfg.WARMUP_RECOUNT,
    )
