"""The method registry (clipprompt/methods/): one declaration per method, read by everything else.

Dassl-free except where marked: the options dataclasses make the yacs keys, every catalogued name is
registered, a method is built and trained through its hooks alone, and the generic trainer names no
method.
"""

import contextlib
import dataclasses
import os
import re
from types import SimpleNamespace

import pytest
import torch
from yacs.config import CfgNode as CN

from clipprompt.catalog import TRAINER_NAMES, TRAINERS
from clipprompt.clip.backbone import Backbone, as_backbone, require_backbone
from clipprompt.config import extend_cfg
from clipprompt.errors import UserError
from clipprompt.methods import BuildContext, get_method, methods
from clipprompt.methods.base import FROZEN_PREFIXES
from clipprompt.prompts.soft import SoftPrompt
from clipprompt.prompts.templates import expand_templates
from conftest import REPO, requires_dassl

NAMES = ["dog", "cat", "sea lion"]


def fresh_cfg():
    cfg = CN()
    cfg.MODEL, cfg.DATASET, cfg.TRAINER = CN(), CN(), CN()
    cfg.MODEL.BACKBONE = CN()
    return extend_cfg(cfg)


def test_the_catalog_is_the_registry():
    assert tuple(methods()) == TRAINER_NAMES
    for name, module in TRAINERS.items():
        assert get_method(name).build.__module__ == f"clipprompt.methods.{module}", name
    with pytest.raises(UserError, match="unknown method 'CoOP'"):
        get_method("CoOP")


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_yacs_keys_are_made_from_the_options_dataclass(name):
    method = get_method(name)
    node = fresh_cfg().TRAINER[method.config_key]
    assert node == method.options.to_node()  # what extend_cfg sets is the dataclass, nothing else
    keys = method.options.keys()
    assert len(keys) == len(dataclasses.fields(method.options))  # every field names its key
    assert {f.name for f in keys.values()} == {f.name for f in dataclasses.fields(method.options)}
    # a run's values come back typed like the defaults, and the defaults are valid
    assert method.options.from_node(node) == method.options()
    method.options_from(fresh_cfg())
    method.published_options()


def test_a_run_value_reaches_the_options_and_a_bad_one_names_its_key():
    cfg = fresh_cfg()
    cfg.TRAINER.KGCOOP.W = 2  # an int from the command line is the float field it sets
    cfg.TRAINER.DUALPROMPTMI.MI.GAUSS_VAR_BOUNDS = [0.1, 5.0]
    assert get_method("KgCoOp").options_from(cfg).w == 2.0
    assert get_method("DualPromptMI").options_from(cfg).mi_gauss_var_bounds == (0.1, 5.0)
    for name, key, value, message in (("KgCoOp", "W", -1.0, "TRAINER.KGCOOP.W must be >= 0"),
                                      ("ProGrad", "T", 0.0, "TRAINER.PROGRAD.T must be > 0"),
                                      ("CoOp", "PREC", "fp8", "TRAINER.COOP.PREC must be one of fp16, fp32, amp")):
        cfg = fresh_cfg()
        method = get_method(name)
        cfg.TRAINER[method.config_key][key] = value
        with pytest.raises(UserError, match=re.escape(message)):
            method.options_from(cfg)


def test_prompt_depths_name_the_full_keys():
    cfg = fresh_cfg()
    assert get_method("CoOp").prompt_depths(cfg) == []
    assert get_method("MaPLe").prompt_depths(cfg) == [("TRAINER.MAPLE.PROMPT_DEPTH", "text", 9),
                                                      ("TRAINER.MAPLE.PROMPT_DEPTH", "image", 9)]
    cfg.TRAINER.PROMPTSRC.N_CTX_VISION = 0
    assert get_method("PromptSRC").prompt_depths(cfg) == [("TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "text", 9)]


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_every_method_builds_and_steps_through_its_hooks_alone(name, tiny_clip):
    """What the trainer does, without Dassl: build from the adapter, freeze, loss, backward hook, step."""
    method = get_method(name)
    options = dataclasses.replace(method.published_options(), prec="fp32")
    depth = {"MaPLe": {"prompt_depth": 1}, "PromptSRC": {"prompt_depth_text": 1, "prompt_depth_vision": 1}}
    options = dataclasses.replace(options, **depth.get(name, {}))  # the tiny CLIP has one block per tower
    shown = []
    context = BuildContext(templates=lambda entries, role: shown.append(role) or expand_templates(entries, "a {}."),
                           max_epoch=2)
    backbone = as_backbone(tiny_clip)
    torch.manual_seed(0)
    model = method.build(backbone, NAMES, options, context)
    assert model.backbone is backbone and model.text_encoder.backbone is backbone  # wrapped once, handed down
    trainable = model.freeze_clip()
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith(FROZEN_PREFIXES))
    assert set(model.trainable_state_dict()) >= {n for n, p in model.named_parameters() if p.requires_grad}
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    run = SimpleNamespace(epoch=0, start_epoch=0, max_epoch=2, batches=lambda: [(images, labels)],
                          autocast=contextlib.nullcontext, sync_statistics=lambda: None)
    model.begin_training(run)
    model.begin_epoch(run)
    loss, logits, terms = model.loss(images, labels)
    assert logits.shape == (4, len(NAMES)) and torch.isfinite(loss)
    if not method.trains:
        assert trainable == []
        return
    step = SimpleNamespace(scale=lambda value: value, reduce=lambda grads: grads)
    model.backward(loss, terms, trainable, step)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable), name
    model.end_epoch(run)


def test_the_adapter_is_wrapped_once_and_read_live(tiny_clip):
    backbone = as_backbone(tiny_clip)
    assert as_backbone(backbone) is backbone
    with pytest.raises(TypeError, match="expected a clipprompt Backbone"):
        SoftPrompt(tiny_clip, NAMES)  # below the model's entry, nothing re-wraps a raw CLIP
    with pytest.raises(TypeError):
        require_backbone(tiny_clip)
    model = get_method("CoOp").build(backbone, NAMES, get_method("CoOp").published_options(), BuildContext())
    for part in Backbone.TEXT_PARTS:  # the text encoder registers the adapter's parts, it does not copy them
        assert getattr(model.text_encoder, part) is getattr(backbone, part)
    assert model.dtype == torch.float32
    model.half()  # a cast after wrapping: the adapter's dtype follows the model
    assert backbone.dtype == model.dtype == model.text_encoder.dtype == torch.float16


def test_the_generic_trainer_names_no_method():
    with open(os.path.join(REPO, "trainers", "base.py")) as f:
        code = re.sub(r'""".*?"""|#.*', "", f.read(), flags=re.S)  # code, not prose
    named = [name for name in TRAINER_NAMES if re.search(rf"\b{name}\b", code)]
    assert named == []
    # a method needs no trainer file: trainers/ holds the generic trainer and the registration
    assert sorted(f for f in os.listdir(os.path.join(REPO, "trainers")) if f.endswith(".py")) == ["__init__.py", "base.py"]


@requires_dassl
def test_one_dassl_trainer_per_method():
    from dassl.engine import TRAINER_REGISTRY

    import trainers
    from trainers.base import PromptTrainer

    for name in TRAINER_NAMES:
        cls = TRAINER_REGISTRY.get(name)
        assert issubclass(cls, PromptTrainer) and cls.METHOD is get_method(name) and cls.__name__ == name
        assert cls.prompt_depths(fresh_cfg()) == get_method(name).prompt_depths(fresh_cfg())
    assert trainers.trainer_class(get_method("CoOp")).METHOD.name == "CoOp"
