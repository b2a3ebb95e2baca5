import math

import pytest
import torch

from clipprompt.errors import UserError
from clipprompt.runtime.scheduler import EpochLRScheduler


def optimizer(lr=0.002):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def lrs(sched, epochs):
    out = []
    for _ in range(epochs):
        out.append(sched.get_last_lr()[0])
        sched.step()
    return out


def test_cosine_with_constant_warmup_matches_dassl_semantics():
    # Dassl (CoOp's setting): epoch 0 at WARMUP_CONS_LR, then cosine over MAX_EPOCH counted after warmup.
    sched = EpochLRScheduler(optimizer(), "cosine", max_epoch=10, warmup_epoch=1, warmup_type="constant", warmup_cons_lr=1e-5)
    expected = [1e-5] + [0.002 * (1 + math.cos(math.pi * k / 10)) / 2 for k in range(9)]
    assert lrs(sched, 10) == pytest.approx(expected)


def test_linear_warmup_and_no_recount():
    sched = EpochLRScheduler(optimizer(1.0), "cosine", max_epoch=4, warmup_epoch=2, warmup_type="linear",
                             warmup_min_lr=0.1, warmup_recount=False)
    assert lrs(sched, 4) == pytest.approx([0.1, 0.5, (1 + math.cos(math.pi * 2 / 4)) / 2, (1 + math.cos(math.pi * 3 / 4)) / 2])


def test_step_schedules():
    single = EpochLRScheduler(optimizer(1.0), "single_step", max_epoch=6, stepsize=(2,), gamma=0.5)
    assert lrs(single, 6) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    multi = EpochLRScheduler(optimizer(1.0), "multi_step", max_epoch=6, stepsize=(1, 4), gamma=0.1)
    assert lrs(multi, 6) == pytest.approx([1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_state_round_trip_holds_only_numbers():
    sched = EpochLRScheduler(optimizer(), "cosine", max_epoch=10, warmup_epoch=1)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    assert all(isinstance(v, (int, float, list)) for v in state.values())
    fresh = EpochLRScheduler(optimizer(), "cosine", max_epoch=10, warmup_epoch=1)
    fresh.load_state_dict(state)
    assert fresh.get_last_lr() == sched.get_last_lr()


def test_unknown_names_are_user_errors():
    with pytest.raises(UserError, match="OPTIM.LR_SCHEDULER"):
        EpochLRScheduler(optimizer(), "exponential")
    with pytest.raises(UserError, match="OPTIM.WARMUP_TYPE"):
        EpochLRScheduler(optimizer(), "cosine", warmup_epoch=1, warmup_type="cubic")
