import argparse
import os
import random

import pytest
import torch

from clipprompt.runtime import checkpoint as ckpt
from clipprompt.errors import UserError


def save(tmp_path, epoch, trainer="CoOp", state=None):
    path = ckpt.checkpoint_path(str(tmp_path), "prompt_learner", epoch)
    optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    return ckpt.save_checkpoint(path, trainer=trainer, model_state=state or {"prompt_learner.ctx": torch.ones(4, 8)},
                                epoch=epoch, optimizer_state=optim.state_dict(), scheduler_state={"last_epoch": epoch},
                                class_count=3, extra={"classnames": ["a", "b", "c"]})


def test_checkpoint_loads_with_weights_only(tmp_path):
    path = save(tmp_path, 2)
    raw = torch.load(path, weights_only=True)
    assert raw["trainer"] == "CoOp" and raw["epoch"] == 2
    assert torch.equal(raw["state_dict"]["prompt_learner.ctx"], torch.ones(4, 8))
    assert not os.path.exists(path + ".tmp")


def test_find_checkpoint_last_and_named_epoch(tmp_path):
    for epoch in (1, 2, 10):
        save(tmp_path, epoch)
    assert ckpt.find_checkpoint(str(tmp_path), "prompt_learner").endswith("model.pth.tar-10")
    assert ckpt.find_checkpoint(str(tmp_path), "prompt_learner", 2).endswith("model.pth.tar-2")
    with pytest.raises(UserError, match="saved epochs: 1, 2, 10"):
        ckpt.find_checkpoint(str(tmp_path), "prompt_learner", 5)


def test_folder_without_checkpoints(tmp_path):
    with pytest.raises(UserError, match="no checkpoints"):
        ckpt.find_checkpoint(str(tmp_path), "prompt_learner")
    with pytest.raises(UserError, match="--model-dir"):
        ckpt.find_checkpoint(str(tmp_path / "missing"), "prompt_learner")


def test_wrong_trainer_and_foreign_files(tmp_path):
    path = save(tmp_path, 1, trainer="CoCoOp")
    with pytest.raises(UserError, match="trained with CoCoOp, not CoOp"):
        ckpt.load_checkpoint(path, expected_trainer="CoOp")
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(UserError, match="not a checkpoint of this toolkit"):
        ckpt.load_checkpoint(str(foreign))
    pickled = tmp_path / "pickled.pth"
    optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    # what upstream Dassl checkpoints hold: a pickled scheduler object
    torch.save({"state_dict": {}, "trainer": "CoOp", "scheduler": torch.optim.lr_scheduler.StepLR(optim, 1)}, pickled)
    with pytest.raises(UserError, match="safely"):
        ckpt.load_checkpoint(str(pickled))


class Tiny(torch.nn.Module):
    def __init__(self, n_cls):
        super().__init__()
        self.ctx = torch.nn.Parameter(torch.zeros(n_cls, 2))
        self.register_buffer("proto", torch.zeros(n_cls))


def test_load_matching_state_shapes_and_class_dependent_skip():
    source = Tiny(5).state_dict()
    with pytest.raises(UserError, match=r"ctx has shape \(5, 2\) but the model expects \(3, 2\)"):
        ckpt.load_matching_state(Tiny(3), source)
    target = Tiny(5)
    ckpt.load_matching_state(target, {"ctx": torch.ones(5, 2), "proto": torch.ones(5)}, skip_prefixes=("proto",))
    assert torch.equal(target.ctx, torch.ones(5, 2)) and torch.equal(target.proto, torch.zeros(5))
    with pytest.raises(UserError, match="unexpected entry"):
        ckpt.load_matching_state(Tiny(5), {"other": torch.ones(1)})


def test_truncated_empty_or_corrupt_checkpoint_is_named_as_such(tmp_path):
    path = save(tmp_path, 3, state={"prompt_learner.ctx": torch.randn(64, 64)})
    data = open(path, "rb").read()
    cases = {
        "half.pth": (data[: len(data) // 2], "truncated"),  # an interrupted copy, a full disk
        "empty.pth": (b"", "empty"),
        "flipped.pth": (data[:300] + bytes([data[300] ^ 0xFF]) + data[301:], "corrupt"),
    }
    for name, (blob, word) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(UserError) as info:
            ckpt.load_checkpoint(str(tmp_path / name))
        message = str(info.value)
        assert word in message and name in message and "not written by this toolkit" not in message, message
    assert ckpt.load_checkpoint(path)["epoch"] == 3  # the intact file still loads


def test_random_bytes_are_corrupt_not_a_foreign_writer(tmp_path):
    """Garbage is "corrupt or not a checkpoint"; only real pickled objects blame another writer."""
    garbage = tmp_path / "model.pth.tar-1"
    for seed in range(40):  # torch.load fails differently on different bytes (UnpicklingError, IndexError, ...)
        garbage.write_bytes(random.Random(seed).randbytes(4096))
        with pytest.raises(UserError) as info:
            ckpt.load_checkpoint(str(garbage))
        assert "corrupt or not a checkpoint" in str(info.value) and "other code" not in str(info.value), seed

    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}, "trainer": "CoOp", "args": argparse.Namespace(lr=1)}, foreign)
    with pytest.raises(UserError) as info:
        ckpt.load_checkpoint(str(foreign))
    assert "argparse.Namespace" in str(info.value) and "written by other code" in str(info.value)
    assert "corrupt or not" not in str(info.value)
