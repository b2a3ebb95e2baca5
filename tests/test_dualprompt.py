import math

import pytest
import torch
import torch.nn.functional as F

from clipprompt.methods.dualprompt import DualPromptMICLIP, DualPromptMIConfig
from clipprompt.errors import UserError
from clipprompt.methods.coop import CoOpCLIP
from clipprompt.prompts.hand import encode_hand_crafted
from clipprompt.clip.backbone import as_backbone
from conftest import TINY_RESOLUTION
from helpers import image_batch

NAMES = ["dog", "cat", "sea lion", "car", "tree"]
TEMPLATE = ["a photo of a {}."]


def batch(n=6, seed=0):
    return image_batch(n, len(NAMES), seed, TINY_RESOLUTION)


def make(tiny_clip, seed=0, **overrides):
    torch.manual_seed(seed)
    model = DualPromptMICLIP(tiny_clip, NAMES, TEMPLATE, DualPromptMIConfig(**overrides))
    x, y = batch(10, seed=123)
    model.observe(model.encode_image(x), y)
    return model


def test_reduces_to_coop_without_mi_augmentation_and_ensemble(tiny_clip):
    x, y = batch()
    torch.manual_seed(7)
    coop = CoOpCLIP(tiny_clip, NAMES, n_ctx=4)
    torch.manual_seed(7)
    dual = DualPromptMICLIP(tiny_clip, NAMES, TEMPLATE, DualPromptMIConfig(
        n_ctx=4, ctx_init="", mi_weight=0.0, aug_weight=0.0, infer_weight=1.0))
    assert torch.equal(coop.prompt_learner.ctx, dual.prompt_learner.ctx)
    loss, logits, terms = dual.loss(x, y)
    coop_logits = coop(x)
    assert torch.equal(logits, coop_logits)
    assert torch.equal(loss, F.cross_entropy(coop_logits, y))
    assert set(terms) == {"loss_ce"}
    with torch.no_grad(), dual.cached_text_features():
        assert torch.equal(dual.predict(x)["main"], coop(x))


@pytest.mark.parametrize("mode", ["posterior", "critic", "views_nce", "gaussian"])
@pytest.mark.parametrize("aug_mode", ["intra", "inter"])
def test_losses_finite_and_gradients_reach_context_and_critics_only(tiny_clip, mode, aug_mode):
    model = make(tiny_clip, mi_mode=mode, aug_mode=aug_mode, mi_learn_tau=True, mi_learn_temperature=True,
                 mi_nce_learn_tau=True, mi_gauss_learn_map=True)
    x, y = batch()
    loss, logits, terms = model.loss(x, y)
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
    assert set(terms) == {"loss_ce", "mi_views", "loss_aug", "mi_aug"}
    loss.backward()
    assert model.prompt_learner.ctx.grad is not None and model.prompt_learner.ctx.grad.abs().sum() > 0
    critic_params = [p for p in model.aug_mi.parameters() if p.requires_grad]
    assert critic_params and all(p.grad is not None for p in critic_params)
    view_params = [p for p in model.view_mi.parameters() if p.requires_grad]
    assert view_params or mode == "critic"  # critic: frozen projections; its tau is shared with nothing else here
    assert all(p.grad is not None for p in view_params)
    for p in [*model.image_encoder.parameters(), *model.text_encoder.parameters(), model.logit_scale]:
        assert p.grad is None


def test_hand_view_is_not_re_encoded_during_training(tiny_clip):
    model = make(tiny_clip)
    hand = model.hand_features.clone()
    # Count every pass through CLIP's text transformer (shared by both views).
    prompts_encoded = []
    model.text_encoder.transformer.register_forward_hook(lambda m, inp, out: prompts_encoded.append(inp[0].shape[1]))
    optim = torch.optim.SGD([model.prompt_learner.ctx], lr=0.1)
    for step in range(3):
        x, y = batch(seed=step)
        loss, _, _ = model.loss(x, y)
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert prompts_encoded == [len(NAMES)] * 3  # the soft view only, once per step
    assert torch.equal(model.hand_features, hand)
    torch.testing.assert_close(hand, encode_hand_crafted(as_backbone(tiny_clip), NAMES, TEMPLATE))


def test_inference_ensemble_formula_and_variants(tiny_clip):
    model = make(tiny_clip, infer_weight=0.3)
    x, _ = batch(4)
    with torch.no_grad(), model.cached_text_features():
        out = model.predict(x)
        soft = model.soft_view()
    expected_text = F.normalize(0.3 * soft + 0.7 * model.hand_features, dim=-1)
    v = model.encode_image(x)
    torch.testing.assert_close(out["main"], model.scale() * v @ expected_text.t())
    torch.testing.assert_close(out["soft_only"], model.scale() * v @ soft.t())
    torch.testing.assert_close(out["hand_only"], model.scale() * v @ model.hand_features.t())


def test_posterior_mi_term_matches_module_on_both_views(tiny_clip):
    from clipprompt.objectives.mi import posterior_mutual_information

    model = make(tiny_clip, mi_mode="posterior", aug_weight=0.0)
    x, y = batch()
    loss, logits, terms = model.loss(x, y)
    v = model.encode_image(x)
    hand_logits = model.scale() * v @ model.hand_features.t()
    expected = posterior_mutual_information(logits, hand_logits)
    torch.testing.assert_close(terms["mi_views"], expected.detach())
    torch.testing.assert_close(loss, F.cross_entropy(logits, y) - model.config.mi_weight * expected)


def test_checkpoint_holds_context_critics_and_prototypes(tiny_clip):
    model = make(tiny_clip)
    keys = set(model.trainable_state_dict())
    assert "prompt_learner.ctx" in keys
    assert {"prototypes.feature_sum", "prototypes.count"} <= keys
    assert any(k.startswith("aug_mi.") for k in keys)
    assert not any(k.startswith(("image_encoder.", "text_encoder.")) or k == "hand_features" for k in keys)


def test_running_prototypes_update_during_training(tiny_clip):
    torch.manual_seed(0)
    model = DualPromptMICLIP(tiny_clip, NAMES, TEMPLATE, DualPromptMIConfig(aug_prototypes="running"))
    x, y = batch()
    model.loss(x, y)
    assert int(model.prototypes.count.sum()) == len(y)


@pytest.mark.parametrize("overrides,key", [
    ({"mi_mode": "bogus"}, "MI.MODE"),
    ({"infer_weight": 1.5}, "INFER_WEIGHT"),
    ({"aug_prototypes": "x"}, "AUG.PROTOTYPES"),
    ({"mi_weight": -1.0}, "MI.WEIGHT"),
    ({"aug_mode": "sideways"}, "AUG.MODE"),
    ({"mi_estimator": "nwj", "mi_mode": "critic"}, "MI.ESTIMATOR"),
    ({"mi_nce_tau": 0.0}, "MI.NCE_TAU"),
    ({"mi_nce_tau": 0.9, "mi_nce_learn_tau": True}, "MI.NCE_TAU"),
    ({"mi_gauss_var": -1.0, "mi_gauss_learn_var": False}, "MI.GAUSS_VAR"),
    ({"mi_gauss_var": 20.0, "mi_gauss_learn_var": True}, "MI.GAUSS_VAR"),
    ({"mi_gauss_var_bounds": (1.0, 0.5)}, "MI.GAUSS_VAR_BOUNDS"),
    ({"mi_gauss_var_bounds": (0.1,)}, "MI.GAUSS_VAR_BOUNDS"),
    ({"aug_feed_view_mi": True, "mi_mode": "views_nce"}, "AUG.FEED_VIEW_MI"),
    ({"aug_feed_view_mi": True, "mi_mode": "gaussian"}, "AUG.FEED_VIEW_MI"),
])
def test_bad_settings_name_their_key(tiny_clip, overrides, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        DualPromptMICLIP(tiny_clip, NAMES, TEMPLATE, DualPromptMIConfig(**overrides))


def _default_trainer_node():
    """TRAINER.DUALPROMPTMI at the defaults of clipprompt/config.py."""
    from clipprompt.config import extend_cfg
    from yacs.config import CfgNode as CN

    cfg = CN()
    cfg.MODEL = CN()
    cfg.MODEL.BACKBONE = CN()
    cfg.DATASET = CN()
    cfg.TRAINER = CN()
    extend_cfg(cfg)
    return cfg.TRAINER.DUALPROMPTMI


def test_every_config_key_reaches_the_model():
    from yacs.config import CfgNode as CN

    node = _default_trainer_node()

    def leaves(n, prefix=""):
        for k, v in n.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, CN) else [f"{prefix}{k}"]

    assert set(leaves(node)) == set(DualPromptMIConfig.keys())  # the yacs keys are made from the dataclass
    defaults = DualPromptMIConfig.from_node(node)
    assert defaults == DualPromptMIConfig()  # yacs defaults and dataclass defaults agree
    node.MI.MODE = "critic"
    node.AUG.ALPHA = 2
    node.MI.GAUSS_VAR_BOUNDS = [0.05, 5]
    node.AUG.FEED_VIEW_MI = True
    changed = DualPromptMIConfig.from_node(node)
    assert changed.mi_mode == "critic" and changed.aug_alpha == 2.0
    assert changed.mi_gauss_var_bounds == (0.05, 5) and changed.aug_feed_view_mi is True


def test_plain_module_defaults_are_the_config_defaults():
    """build_view_mi's and each estimator's keyword defaults equal TRAINER.DUALPROMPTMI.MI's, so code
    that builds a module without the config (benchmarks, notebooks) gets the method as configured."""
    import inspect

    from clipprompt.objectives.mi import GaussianMI, PosteriorMI, ViewsNCE, build_view_mi

    defaults = DualPromptMIConfig.from_node(_default_trainer_node())
    # (callable, prefix of its arguments' field in DualPromptMIConfig, arguments without a config key)
    for function, prefix, free in ((build_view_mi, "mi_", {"mode", "dim"}), (GaussianMI, "mi_gauss_", {"dim"}),
                                   (ViewsNCE, "mi_nce_", {"tau_bounds"}), (PosteriorMI, "mi_", {"init_scale", "scale_bounds", "eps"})):
        parameters = inspect.signature(function).parameters
        for name, parameter in parameters.items():
            if name in free or parameter.kind is parameter.VAR_KEYWORD:
                continue
            assert parameter.default == getattr(defaults, prefix + name), f"{function.__name__}({name}=...)"
    # what that means: the default gaussian term has a fixed variance, nothing of its own to learn
    module = build_view_mi(defaults.mi_mode, 16)
    assert isinstance(module, GaussianMI) and not module.learn_var and list(module.parameters()) == []


def test_soft_only_inference_still_reports_both_views(tiny_clip):
    model = make(tiny_clip, infer_weight=1.0)
    x, _ = batch(4)
    with torch.no_grad(), model.cached_text_features():
        out = model.predict(x)
        soft = model.soft_view()
    v = model.encode_image(x)
    torch.testing.assert_close(out["main"], model.scale() * v @ soft.t())
    torch.testing.assert_close(out["soft_only"], out["main"])
    torch.testing.assert_close(out["hand_only"], model.scale() * v @ model.hand_features.t())


def test_views_nce_uses_every_template_encoded_once(tiny_clip):
    from clipprompt.objectives.mi import ViewsNCE
    from clipprompt.prompts.hand import encode_hand_crafted_per_template

    templates = ["a photo of a {}.", "a drawing of a {}.", "itap of a {}."]
    torch.manual_seed(0)
    model = DualPromptMICLIP(tiny_clip, NAMES, templates, DualPromptMIConfig(mi_mode="views_nce", aug_weight=0.0))
    per_template = encode_hand_crafted_per_template(as_backbone(tiny_clip), NAMES, templates)
    torch.testing.assert_close(model.hand_per_template, per_template)
    # the ensembled view is what the other modes (and inference) use
    torch.testing.assert_close(model.hand_features, encode_hand_crafted(as_backbone(tiny_clip), NAMES, templates))
    assert isinstance(model.view_mi, ViewsNCE) and model.view_mi.tau.item() == pytest.approx(0.01)
    x, y = batch()
    loss, logits, terms = model.loss(x, y)
    expected = model.view_mi(model.soft_view(), per_template)
    torch.testing.assert_close(terms["mi_views"], expected.detach())
    torch.testing.assert_close(loss, F.cross_entropy(logits, y) - model.config.mi_weight * expected)
    assert "hand_per_template" not in model.trainable_state_dict()
    # one template: the per-template stack is the view itself (nothing encoded twice)
    single = make(tiny_clip, mi_mode="views_nce")
    torch.testing.assert_close(single.hand_per_template, single.hand_features.unsqueeze(0))
    assert make(tiny_clip).hand_per_template is None  # other modes keep no stack


def test_gaussian_with_fixed_unit_variance_is_kgcoop(tiny_clip):
    # MI.MODE gaussian, variance fixed at 1, identity map, no augmentation, w = 1: the bundled KgCoOp
    # (same W) plus the constant W * log(2 pi) / 2 -- same logits, same gradients, same predictions
    import math

    from clipprompt.methods.kgcoop import KgCoOpCLIP

    x, y = batch()
    torch.manual_seed(3)
    kgcoop = KgCoOpCLIP(tiny_clip, NAMES, TEMPLATE, weight=8.0)
    torch.manual_seed(3)
    dual = DualPromptMICLIP(tiny_clip, NAMES, TEMPLATE, DualPromptMIConfig(
        mi_mode="gaussian", mi_gauss_learn_var=False, mi_gauss_var=1.0, mi_weight=8.0, aug_weight=0.0,
        infer_weight=1.0))
    assert list(dual.view_mi.parameters()) == []
    loss_kg, logits_kg, _ = kgcoop.loss(x, y)
    loss_dual, logits_dual, _ = dual.loss(x, y)
    torch.testing.assert_close(logits_dual, logits_kg)
    torch.testing.assert_close(loss_dual, loss_kg + 8.0 * 0.5 * math.log(2 * math.pi))
    (grad_kg,) = torch.autograd.grad(loss_kg, kgcoop.prompt_learner.ctx)
    (grad_dual,) = torch.autograd.grad(loss_dual, dual.prompt_learner.ctx)
    torch.testing.assert_close(grad_dual, grad_kg, rtol=1e-4, atol=1e-6)
    with torch.no_grad(), dual.cached_text_features(), kgcoop.cached_text_features():
        torch.testing.assert_close(dual.predict(x)["main"], kgcoop.predict(x)["main"])


def test_learnt_gaussian_variance_is_checkpointed_and_class_independent(tiny_clip):
    model = make(tiny_clip, mi_mode="gaussian", mi_gauss_learn_var=True)
    keys = set(model.trainable_state_dict())
    assert "view_mi.raw_var" in keys
    assert not any(k.startswith(model.CLASS_DEPENDENT_PREFIXES) for k in keys if k.startswith("view_mi."))
    new_classes = DualPromptMICLIP(tiny_clip, ["bus", "fox"], TEMPLATE, DualPromptMIConfig(mi_mode="gaussian", mi_gauss_learn_var=True))
    state = {k: v for k, v in model.trainable_state_dict().items() if not k.startswith(model.CLASS_DEPENDENT_PREFIXES)}
    new_classes.load_state_dict(state, strict=False)
    torch.testing.assert_close(new_classes.view_mi.raw_var, model.view_mi.raw_var)


def test_mixup_feeds_the_posterior_mi_when_asked(tiny_clip):
    from clipprompt.objectives.mi import posterior_mutual_information

    x, y = batch()
    for aug_weight in (1.0, 0.0):
        model = make(tiny_clip, mi_mode="posterior", aug_feed_view_mi=True, aug_weight=aug_weight, aug_mode="intra")
        assert model.config.uses_mixup
        torch.manual_seed(5)
        loss, logits, terms = model.loss(x, y)
        v = model.encode_image(x)
        torch.manual_seed(5)  # the same draw as inside loss()
        mixed = model.mixup(v, y, model.prototypes.prototypes(), seen_mask=model.prototypes.seen)
        features = torch.cat([v, mixed.features])
        soft = model.soft_view()
        expected = posterior_mutual_information(model.logits(features, soft), model.logits(features, model.hand_features))
        torch.testing.assert_close(terms["mi_views"], expected.detach())
        plain = posterior_mutual_information(logits, model.logits(v, model.hand_features))
        assert abs(expected.item() - plain.item()) > 0.05 * abs(plain.item())  # feeding changes the term
        assert ("loss_aug" in terms) == (aug_weight > 0)
        if aug_weight == 0:
            torch.testing.assert_close(loss, F.cross_entropy(logits, y) - model.config.mi_weight * expected)
    assert not make(tiny_clip, aug_weight=0.0).config.uses_mixup


METHOD_KEYS = ("INFER_WEIGHT", "MI.MODE", "MI.WEIGHT", "MI.GAUSS_VAR", "MI.GAUSS_LEARN_VAR", "AUG.WEIGHT", "AUG.MODE",
               "HAND_TEMPLATES")


def _trainer_node(path):
    """TRAINER.DUALPROMPTMI of one config file: its own keys (raw YAML) and the merged yacs node."""
    import os

    import yaml
    from yacs.config import CfgNode as CN

    with open(path) as f:
        raw = yaml.safe_load(f)["TRAINER"]["DUALPROMPTMI"]
    node = _default_trainer_node()
    node.merge_from_other_cfg(CN(raw))
    written = set()
    for key, value in raw.items():
        written |= {f"{key}.{sub}" for sub in value} if isinstance(value, dict) else {key}
    return written, node, os.path.basename(path)


def _dualpromptmi_configs():
    import glob
    import os

    repo = os.path.join(os.path.dirname(__file__), "..")
    return sorted(glob.glob(os.path.join(repo, "configs", "trainers", "DualPromptMI", "*.yaml"))
                  + glob.glob(os.path.join(repo, "benchmarks", "configs", "trainers", "DualPromptMI", "*.yaml")))


def test_shipped_configs_pin_what_they_claim():
    """The ViT-B/16 settings spell out the selected method keys (equal to the defaults today), and the
    "CoOp + ensemble" baselines set their own inference weight, so a change of defaults moves neither."""
    paths = _dualpromptmi_configs()
    assert len(paths) >= 6
    for path in paths:
        written, node, name = _trainer_node(path)
        config = DualPromptMIConfig.from_node(node)
        if name.endswith("_ensemble_only.yaml"):
            assert {"INFER_WEIGHT", "MI.WEIGHT", "AUG.WEIGHT", "HAND_TEMPLATES"} <= written, name
            assert (config.mi_weight, config.aug_weight, config.infer_weight) == (0.0, 0.0, 0.5), name
            assert list(node.HAND_TEMPLATES) == ["dataset"], name
        elif name.startswith("vit_b16"):
            assert set(METHOD_KEYS) <= written, name
            # over promptsrc: PromptSRC's prompts and options, and the view MI off (docs/methods.md#over-promptsrc)
            promptsrc = name.endswith("_promptsrc.yaml")
            learner = dict(prompt_learner="promptsrc", mi_weight=0.0) if promptsrc else {}
            assert config == DualPromptMIConfig(n_ctx=config.n_ctx, ctx_init=config.ctx_init, **learner), name
            assert list(node.HAND_TEMPLATES) == list(_default_trainer_node().HAND_TEMPLATES), name


# ----- PROMPT_LEARNER: coop (today's model), ivlp and maple ------------------------------------
# The trainable state of DualPromptMI before deep prompts existed (read off commit 7a8e391's
# clipprompt/methods/dualprompt.py, default config and the learnt-variance gaussian): PROMPT_LEARNER coop
# must keep it, so that checkpoints written before load unchanged.
PRE_DEEP_STATE_KEYS = {
    "default": ["aug_mi.critic.weight_a", "aug_mi.critic.weight_b", "prompt_learner.ctx", "prototypes.count",
                "prototypes.feature_sum"],
    "learn_var": ["aug_mi.critic.weight_a", "aug_mi.critic.weight_b", "prompt_learner.ctx", "prototypes.count",
                  "prototypes.feature_sum", "view_mi.raw_var"],
}


@pytest.fixture(scope="module")
def clip3():
    from conftest import build_tiny_clip

    return build_tiny_clip(seed=2, layers=3).requires_grad_(False)


DEEP = dict(deep_text_depth=3, deep_vision_n_ctx=2, deep_vision_depth=2)


@pytest.mark.parametrize("case", ["default", "learn_var"])
def test_coop_prompt_learner_is_the_pre_deep_model(clip3, case):
    """Recomputes DualPromptMI's loss from CoOp's pieces (CoOpCLIP's soft view and frozen image
    features, the model's own MI, critic and mixup modules), as the model was before deep prompts."""
    overrides = {"mi_gauss_learn_var": True} if case == "learn_var" else {}
    torch.manual_seed(0)
    dual = DualPromptMICLIP(clip3, NAMES, TEMPLATE, DualPromptMIConfig(**overrides))
    assert dual.config.prompt_learner == "coop" and type(dual.prompt_learner).__name__ == "SoftPrompt"
    assert sorted(dual.trainable_state_dict()) == PRE_DEEP_STATE_KEYS[case]
    assert not hasattr(dual, "vision_mi")
    coop = CoOpCLIP(clip3, NAMES, n_ctx=4, ctx_init="a photo of a")
    with torch.no_grad():
        coop.prompt_learner.ctx.copy_(dual.prompt_learner.ctx + 0.1 * torch.randn(dual.prompt_learner.ctx.shape))
        dual.prompt_learner.ctx.copy_(coop.prompt_learner.ctx)
    x, y = batch(seed=4)
    features = dual.encode_image(x)
    assert not features.requires_grad and torch.equal(features, dual.encode_image_frozen(x))
    assert torch.equal(features, coop.encode_image(x))
    dual.observe(features, y)
    soft = dual.soft_view()
    assert torch.equal(soft, coop.compute_text_features())

    torch.manual_seed(5)
    loss, logits, terms = dual.loss(x, y)
    torch.manual_seed(5)  # the same mixup draw, by hand
    ref_soft = coop.compute_text_features()
    ref_logits = coop.logits(coop.encode_image(x), ref_soft)
    mixed = dual.mixup(features, y, dual.prototypes.prototypes(), seen_mask=dual.prototypes.seen)
    mixed_logits = coop.logits(mixed.features, ref_soft)  # the model's order of operations (and so of
    mi = dual.view_mi(ref_soft, dual.hand_features)       # the gradient sums): bit-for-bit equality
    aug, _ = dual.augmentation_loss(mixed, y, ref_soft, mixed_logits)
    cfg = dual.config
    reference = F.cross_entropy(ref_logits, y) - cfg.mi_weight * mi + cfg.aug_weight * aug
    assert torch.equal(logits, ref_logits) and torch.equal(loss, reference)
    assert set(terms) == {"loss_ce", "mi_views", "loss_aug", "mi_aug"}
    (grad,) = torch.autograd.grad(loss, dual.prompt_learner.ctx)
    (ref_grad,) = torch.autograd.grad(reference, coop.prompt_learner.ctx)
    assert torch.equal(grad, ref_grad) and grad.abs().max() > 0


@pytest.mark.parametrize("learner", ["ivlp", "maple"])
def test_deep_prompt_learners_train_both_towers(clip3, learner):
    torch.manual_seed(0)
    model = DualPromptMICLIP(clip3, NAMES, TEMPLATE, DualPromptMIConfig(prompt_learner=learner, **DEEP))
    x, y = batch()
    model.observe(model.encode_image(x).detach(), y)
    features = model.encode_image(x)
    assert (features - model.encode_image_frozen(x)).abs().max() > 1e-4  # the prompted tower
    loss, _, terms = model.loss(x, y)
    loss.backward()
    params = dict(model.prompt_learner.named_parameters())
    vision = ["vision_first", "vision_deep"] if learner == "ivlp" else [k for k in params if k.startswith("coupling.")]
    assert vision and all(params[k].grad.abs().max() > 0 for k in vision)
    assert params["ctx"].grad.abs().max() > 0 and params["text_deep"].grad.abs().max() > 0
    assert all(p.grad is None for p in [*model.image_encoder.parameters(), *model.text_encoder.parameters()])
    keys = set(model.trainable_state_dict())
    assert {f"prompt_learner.{k}" for k in params} <= keys and "prototypes.count" in keys


def test_vision_mi_term_is_the_gaussian_bound_on_prompted_and_frozen_images(clip3):
    torch.manual_seed(0)
    var = 2.0
    model = DualPromptMICLIP(clip3, NAMES, TEMPLATE, DualPromptMIConfig(
        prompt_learner="ivlp", mi_weight=0.0, aug_weight=0.0, vision_mi_weight=3.0, mi_gauss_var=var, **DEEP))
    assert "vision_mi.fixed_var" not in model.trainable_state_dict()  # a fixed variance: nothing to save
    x, y = batch(seed=1)
    loss, logits, terms = model.loss(x, y)
    prompted, frozen = model.encode_image(x), model.encode_image_frozen(x)
    dim = prompted.shape[1]
    # mean log N(v^0; v, var I) per dimension, features scaled by sqrt(D) (as MI.MODE gaussian)
    expected = -0.5 * (dim * (prompted - frozen).pow(2).mean() / var + math.log(var) + math.log(2 * math.pi))
    torch.testing.assert_close(terms["mi_vision"], expected.detach())
    torch.testing.assert_close(loss, F.cross_entropy(logits, y) - 3.0 * expected)
    (grad,) = torch.autograd.grad(-expected, model.prompt_learner.vision_first)
    assert grad.abs().max() > 0  # the term pulls the vision prompts towards frozen CLIP


@pytest.mark.parametrize("overrides", [
    {"vision_mi_weight": 1.0},
    {"vision_mi_weight": 1.0, "prompt_learner": "ivlp", "deep_vision_n_ctx": 0},
])
def test_vision_mi_without_vision_prompts_is_refused(clip3, overrides):
    with pytest.raises(UserError) as info:
        DualPromptMICLIP(clip3, NAMES, TEMPLATE, DualPromptMIConfig(**overrides))
    message = str(info.value)
    assert "TRAINER.DUALPROMPTMI.VISION_MI.WEIGHT needs vision prompts" in message and "\n" not in message


@pytest.mark.parametrize("overrides,key", [
    ({"prompt_learner": "deep"}, "PROMPT_LEARNER must be one of coop, ivlp, maple"),
    ({"prompt_learner": "ivlp", "csc": True}, "PROMPT_LEARNER ivlp: deep prompts need a shared context"),
    ({"prompt_learner": "maple", "deep_text_depth": 4}, "TRAINER.DUALPROMPTMI.DEEP.TEXT_DEPTH must lie in 1..3"),
    ({"prompt_learner": "ivlp", "deep_text_depth": 2, "deep_vision_depth": 7},
     "TRAINER.DUALPROMPTMI.DEEP.VISION_DEPTH must lie in 1..3"),
    ({"prompt_learner": "maple", "n_ctx": 5}, "TRAINER.DUALPROMPTMI.N_CTX must lie in 1..4"),
    ({"prompt_learner": "maple", "vision_mi_weight": -1.0}, "VISION_MI.WEIGHT must be >= 0"),
])
def test_bad_deep_settings_are_one_line(clip3, overrides, key):
    with pytest.raises(UserError) as info:
        DualPromptMICLIP(clip3, NAMES, TEMPLATE, DualPromptMIConfig(**overrides))
    assert key in str(info.value) and "\n" not in str(info.value)


# ----- class prototypes that follow the prompted image tower -----------------------------------

@pytest.mark.parametrize("overrides,follows", [
    ({}, False),  # coop: frozen CLIP's image tower
    ({"prompt_learner": "ivlp", **DEEP, "deep_vision_n_ctx": 0}, False),  # text prompts only
    ({"prompt_learner": "ivlp", **DEEP}, True),
    ({"prompt_learner": "maple", **DEEP}, True),
    ({"prompt_learner": "maple", **DEEP, "aug_weight": 0.0}, False),  # no mixup: no prototypes to renew
])
def test_prototypes_follow_the_image_tower_exactly_when_it_trains(clip3, overrides, follows):
    torch.manual_seed(0)
    model = DualPromptMICLIP(clip3, NAMES, TEMPLATE, DualPromptMIConfig(**overrides))
    assert model.prototypes_follow_image_tower == follows
    x, _ = batch()
    # the flag says what the graph says: do the image features the mixup uses depend on trained parameters?
    assert model.prototypes_follow_image_tower == (model.encode_image(x).requires_grad and model.config.uses_mixup)


@pytest.mark.parametrize("learner", ["ivlp", "maple"])
def test_refreshed_prototypes_are_the_mean_of_the_current_prompted_features(clip3, learner):
    torch.manual_seed(0)
    model = DualPromptMICLIP(clip3, NAMES, TEMPLATE, DualPromptMIConfig(prompt_learner=learner, **DEEP))
    train = [batch(6, seed=s) for s in range(3)]  # a training set of 18 images over 5 classes

    def current_prototypes():  # normalise(per-class mean), as ClassPrototypes describes them
        with torch.no_grad():
            features = torch.cat([model.encode_image(x) for x, _ in train])
        labels = torch.cat([y for _, y in train])
        return F.normalize(torch.stack([features[labels == c].mean(dim=0) for c in range(len(NAMES))]), dim=1)

    assert model.refresh_prototypes(train) == 18
    stale = model.prototypes.prototypes().clone()
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    for x, y in train:  # one epoch
        loss = model.loss(x, y)[0]
        optim.zero_grad()
        loss.backward()
        optim.step()
    expected = current_prototypes()
    assert (stale - expected).abs().max() > 1e-3  # the epoch moved the features: the old prototypes are stale
    assert model.refresh_prototypes(train) == 18  # from scratch, not added to the old sums
    assert model.prototypes.count.tolist() == [6, 3, 3, 3, 3]
    torch.testing.assert_close(model.prototypes.prototypes(), expected, rtol=0, atol=1e-5)  # fp32
