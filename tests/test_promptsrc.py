"""PromptSRC (clipprompt/methods/promptsrc.py): IVLP when unregularised, each regulariser against a hand
computation, the frozen teacher, and Gaussian prompt aggregation (weights, running sum, resume)."""

from types import SimpleNamespace
import math

import pytest
import torch
import torch.nn.functional as F

from clipprompt.runtime import checkpoint as ckpt
from clipprompt.errors import UserError
from clipprompt.methods.maple import DeepPromptCLIP
from clipprompt.prompts.hand import encode_hand_crafted
from clipprompt.methods.promptsrc import GaussianPromptAggregate, PromptSRCCLIP, gaussian_epoch_weights
from clipprompt.clip.backbone import as_backbone
from conftest import TINY_RESOLUTION, build_tiny_clip
from helpers import image_batch

NAMES = ["dog", "cat", "sea lion", "car", "tree"]
TEMPLATES = ["a photo of a {}.", "a drawing of a {}.", "itap of a {}."]
PROMPT = dict(n_ctx=4, ctx_init="a photo of a", text_depth=3, vision_n_ctx=2, vision_depth=2)


@pytest.fixture(scope="module")
def clip3():
    return build_tiny_clip(seed=3, layers=3).requires_grad_(False)


def batch(n=6, seed=0):
    return image_batch(n, len(NAMES), seed, TINY_RESOLUTION)


def randomise(module, seed=0, std=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=g) * std)


def make(clip_model, seed=0, **weights):
    model = PromptSRCCLIP(clip_model, NAMES, TEMPLATES, **{**dict(gpa=None), **weights}, **PROMPT)
    randomise(model.prompt_learner, seed)
    return model


def grads(model):
    return {k: p.grad.clone() for k, p in model.prompt_learner.named_parameters()}


def after(epoch):
    """What the trainer hands ``end_epoch`` after (1-based) ``epoch``."""
    return SimpleNamespace(epoch=epoch - 1)


def test_unregularised_promptsrc_is_ivlp(clip3):
    x, y = batch()
    src = make(clip3, text_weight=0.0, image_weight=0.0, kl_weight=0.0)
    ivlp = DeepPromptCLIP(clip3, NAMES, coupled=False, **PROMPT)
    ivlp.prompt_learner.load_state_dict(src.prompt_learner.state_dict())
    assert not src.regularised
    loss, logits, terms = src.loss(x, y)
    ivlp_logits = ivlp(x)
    ivlp_loss = F.cross_entropy(ivlp_logits, y)
    assert torch.equal(logits, ivlp_logits) and torch.equal(loss, ivlp_loss) and set(terms) == {"ce"}
    loss.backward()
    ivlp_loss.backward()
    mine, theirs = grads(src), grads(ivlp)
    assert set(mine) == {"ctx", "text_deep", "vision_first", "vision_deep"}
    for key in mine:
        assert torch.equal(mine[key], theirs[key]) and mine[key].abs().max() > 0, key
    with torch.no_grad(), src.cached_text_features(), ivlp.cached_text_features():
        assert torch.equal(src.predict(x)["main"], ivlp.predict(x)["main"])


def test_each_regulariser_equals_its_hand_computation(clip3):
    x, y = batch(seed=1)
    model = make(clip3, seed=2, text_weight=25.0, image_weight=10.0, kl_weight=1.0)
    loss, logits, terms = model.loss(x, y)
    # by hand, from the model's own passes
    text = model.compute_text_features()
    image = model.encode_image(x)
    frozen_image = model.encode_image_frozen(x)
    teacher = encode_hand_crafted(as_backbone(clip3), NAMES, TEMPLATES, ensemble="raw")
    scale = clip3.logit_scale.exp()
    student_logits = scale * image @ text.t()
    teacher_logits = scale * frozen_image @ teacher.t()
    l1_text = (text - teacher).abs().mean()
    l1_image = (image - frozen_image).abs().mean()
    p_teacher = teacher_logits.softmax(dim=-1)
    kl = (p_teacher * (p_teacher.log() - student_logits.log_softmax(dim=-1))).sum() / (len(y) * len(NAMES))
    ce = F.cross_entropy(student_logits, y)
    expected = ce + 25.0 * l1_text + 10.0 * l1_image + 1.0 * kl
    close = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, student_logits, **close)
    for name, value in (("ce", ce), ("l1_text", l1_text), ("l1_image", l1_image), ("kl", kl)):
        torch.testing.assert_close(terms[name], value.detach(), **close)
        assert value > 0, name
    torch.testing.assert_close(loss, expected, **close)
    (grad_loss,) = torch.autograd.grad(loss, model.prompt_learner.vision_first)
    (grad_expected,) = torch.autograd.grad(expected, model.prompt_learner.vision_first)
    torch.testing.assert_close(grad_loss, grad_expected, rtol=1e-4, atol=1e-7)
    # each weight scales its own term: only the image L1 changes with IMAGE_LOSS_WEIGHT
    other = make(clip3, seed=2, text_weight=25.0, image_weight=3.0, kl_weight=1.0)
    other.prompt_learner.load_state_dict(model.prompt_learner.state_dict())
    other_loss, _, _ = other.loss(x, y)
    torch.testing.assert_close(loss - other_loss, 7.0 * l1_image, **close)


def test_regularisers_vanish_at_the_frozen_model(clip3):
    """Depth 1, no vision prompts, the context at its "a photo of a" init and that template as the
    teacher: the prompted model is frozen CLIP, so both L1 terms and the KL are zero."""
    x, y = batch(seed=2)
    model = PromptSRCCLIP(clip3, NAMES, ["a photo of a {}."], gpa=None, n_ctx=4, ctx_init="a photo of a",
                          text_depth=1, vision_n_ctx=0)
    _, _, terms = model.loss(x, y)
    for name in ("l1_text", "l1_image", "kl"):
        assert abs(terms[name].item()) < 1e-6, (name, terms[name])


def test_teacher_is_the_hand_crafted_ensemble_kept_out_of_checkpoints(clip3):
    model = make(clip3)
    # the official rule by default (the templates' unnormalised features averaged); CLIP's on request
    assert torch.equal(model.teacher_text, encode_hand_crafted(as_backbone(clip3), NAMES, TEMPLATES, ensemble="raw"))
    unit = make(clip3, teacher_ensemble="unit")
    assert torch.equal(unit.teacher_text, encode_hand_crafted(as_backbone(clip3), NAMES, TEMPLATES))
    assert not torch.equal(unit.teacher_text, model.teacher_text)
    assert set(model.trainable_state_dict()) == {f"prompt_learner.{k}" for k in
                                                 ("ctx", "text_deep", "vision_first", "vision_deep")}


@pytest.mark.parametrize("key", ["text_weight", "image_weight", "kl_weight"])
def test_negative_weights_name_their_key(clip3, key):
    name = {"text_weight": "TEXT_LOSS_WEIGHT", "image_weight": "IMAGE_LOSS_WEIGHT", "kl_weight": "KL_LOSS_WEIGHT"}[key]
    with pytest.raises(UserError, match=f"TRAINER.PROMPTSRC.{name} must be >= 0"):
        PromptSRCCLIP(clip3, NAMES, TEMPLATES, **{key: -1.0}, **PROMPT)


# ----- Gaussian prompt aggregation ----------------------------------------------------------
@pytest.mark.parametrize("max_epoch, mean, std", [(20, 15.0, 1.0), (5, 3.0, 1.5), (50, 30.0, 30.0), (2, 15.0, 1.0)])
def test_epoch_weights_are_the_normalised_normal_density(max_epoch, mean, std):
    weights = gaussian_epoch_weights(max_epoch, mean, std)
    normal = torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64))
    density = normal.log_prob(torch.arange(1, max_epoch + 1, dtype=torch.float64)).exp()
    assert len(weights) == max_epoch and math.isclose(sum(weights), 1.0, rel_tol=1e-12)
    torch.testing.assert_close(torch.tensor(weights, dtype=torch.float64), density / density.sum(), rtol=1e-9, atol=1e-300)
    peak = max(range(max_epoch), key=weights.__getitem__) + 1
    assert peak == min(max(round(mean), 1), max_epoch)


@pytest.mark.parametrize("args, fragment", [
    ((5, 3.0, 0.0), "TRAINER.PROMPTSRC.GPA_STD must be positive, got 0.0"),
    ((5, 3.0, -2.0), "TRAINER.PROMPTSRC.GPA_STD must be positive"),
    ((5, 1e6, 1.0), "TRAINER.PROMPTSRC.GPA_MEAN 1000000.0 with GPA_STD 1.0 gives no weight to epochs 1..5"),
    ((0, 3.0, 1.0), "at least one epoch"),
])
def test_bad_aggregation_settings_are_one_line(clip3, args, fragment):
    with pytest.raises(UserError) as info:
        gaussian_epoch_weights(*args)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="GPA"):
        PromptSRCCLIP(clip3, NAMES, TEMPLATES, gpa=(5, 1e6, 1.0), **PROMPT)


def set_epoch_values(module, epoch):
    """Known, distinct parameter values for each epoch."""
    with torch.no_grad():
        for index, param in enumerate(module.parameters()):
            param.copy_(torch.arange(param.numel(), dtype=param.dtype).view(param.shape) * 0.01 + epoch * (index + 1))


def test_aggregate_is_the_weighted_mean_of_the_epochs(clip3):
    model = make(clip3, gpa=(4, 2.5, 1.0))
    learner = model.prompt_learner
    weights = gaussian_epoch_weights(4, 2.5, 1.0)
    expected = {k: torch.zeros_like(p, dtype=torch.float64) for k, p in learner.named_parameters()}
    for epoch in range(1, 5):
        set_epoch_values(learner, epoch)
        for k, p in learner.named_parameters():
            expected[k] += weights[epoch - 1] * p.detach().double()
        message = model.end_epoch(after(epoch))
        assert (message is not None) == (epoch == 4)
        assert message is None or "weighted mean over 4 epochs" in message
        if epoch < 4:  # the prompts train on untouched until the last epoch
            assert not model.aggregate.complete
            with pytest.raises(RuntimeError, match=f"{epoch} of 4 epochs added"):
                model.aggregate.load_into(learner)
    for k, p in learner.named_parameters():
        torch.testing.assert_close(p.detach().double(), expected[k], rtol=1e-6, atol=1e-7)
        assert not torch.allclose(p.detach().double(), 4 * torch.ones_like(expected[k]))


def test_aggregate_refuses_a_skipped_or_repeated_epoch(clip3):
    learner = make(clip3).prompt_learner
    aggregate = GaussianPromptAggregate(learner, 3, 2.0, 1.0)
    with pytest.raises(RuntimeError, match="epoch 2 added after 0"):
        aggregate.add(learner, 2)
    aggregate.add(learner, 1)
    with pytest.raises(RuntimeError, match="epoch 1 added after 1"):
        aggregate.add(learner, 1)
    with pytest.raises(RuntimeError, match="epoch 3 added after 1"):
        aggregate.add(learner, 3)
    assert int(aggregate.epochs_added) == 1


def test_aggregate_is_checkpointed_and_a_resume_continues_it(clip3):
    gpa = (3, 2.0, 1.0)
    straight = make(clip3, gpa=gpa)
    interrupted = make(clip3, gpa=gpa)
    keys = set(straight.trainable_state_dict())
    sums = {f"aggregate.sum_{i}" for i in range(4)}
    assert sums | {"aggregate.epochs_added"} <= keys
    for model in (straight, interrupted):
        set_epoch_values(model.prompt_learner, 1)
        model.end_epoch(after(1))
    state = {k: v.clone() for k, v in interrupted.trainable_state_dict().items()}
    assert int(state["aggregate.epochs_added"]) == 1 and any(state[k].abs().sum() > 0 for k in sums)

    resumed = make(clip3, seed=9, gpa=gpa)  # a fresh process: other prompts, an empty aggregate
    ckpt.load_matching_state(resumed, state)
    assert int(resumed.aggregate.epochs_added) == 1
    for model in (straight, resumed):
        for epoch in (2, 3):
            set_epoch_values(model.prompt_learner, epoch)
            model.end_epoch(after(epoch))
    for (name, a), (_, b) in zip(straight.prompt_learner.named_parameters(), resumed.prompt_learner.named_parameters()):
        assert torch.equal(a, b), name
    # without the aggregate's state the resumed run would refuse to add epoch 2 first
    fresh = make(clip3, gpa=gpa)
    with pytest.raises(RuntimeError, match="epoch 2 added after 0"):
        fresh.end_epoch(after(2))


def test_no_aggregation_leaves_the_prompts_alone(clip3):
    model = make(clip3)
    before = {k: p.clone() for k, p in model.prompt_learner.named_parameters()}
    assert model.aggregate is None and model.end_epoch(after(1)) is None
    assert all(torch.equal(p, before[k]) for k, p in model.prompt_learner.named_parameters())
    assert not any(k.startswith("aggregate.") for k in model.trainable_state_dict())


def test_teacher_ensemble_rule_is_validated():
    from clipprompt.methods import get_method

    method = get_method("PromptSRC")
    assert method.published_options().teacher_ensemble == "raw"
    with pytest.raises(UserError, match="TRAINER.PROMPTSRC.TEACHER_ENSEMBLE must be one of unit, raw, got 'mean'"):
        method.published_options(teacher_ensemble="mean")
