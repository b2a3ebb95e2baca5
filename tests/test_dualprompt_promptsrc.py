"""DualPromptMI over PromptSRC (``TRAINER.DUALPROMPTMI.PROMPT_LEARNER promptsrc``): with DualPromptMI's
terms off it is the ``PromptSRC`` trainer bit for bit (model, and two epochs of train.py with GPA);
each of DualPromptMI's terms changes the loss; PromptSRC's options are PromptSRC's; bad settings are
one line naming their key; the depth preflight; prototypes and predictions after the aggregate."""

import contextlib
import dataclasses
import glob
import os
import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from clipprompt.errors import UserError
from clipprompt.methods.dualprompt import DualPromptMICLIP, DualPromptMIConfig
from clipprompt.methods.promptsrc import PromptSRCCLIP, PromptSRCOptions, gaussian_epoch_weights
from conftest import TINY_RESOLUTION, build_tiny_clip, requires_dassl, run_cli
from helpers import DUAL_LEARNERS, TINY, image_batch, ok, results, train_args, user_error

NAMES = ["dog", "cat", "sea lion", "car", "tree"]
HAND = ["a photo of a {}."]
TEACHER = ["a photo of a {}.", "a drawing of a {}.", "itap of a {}."]
# PromptSRC's prompts at the 3-block tiny CLIP, in both spellings.
SRC_PROMPT = dict(n_ctx=4, ctx_init="a photo of a", text_depth=3, vision_n_ctx=2, vision_depth=2)
DUAL_PROMPT = dict(prompt_learner="promptsrc", n_ctx=4, ctx_init="a photo of a", deep_text_depth=3,
                   deep_vision_n_ctx=2, deep_vision_depth=2)
TERMS_OFF = dict(mi_weight=0.0, aug_weight=0.0, infer_weight=1.0)
GPA = (2, 1.5, 1.0)  # (epochs, mean, std): both epochs weigh


@pytest.fixture(scope="module")
def clip3():
    return build_tiny_clip(seed=4, layers=3).requires_grad_(False)


def batch(n=6, seed=0):
    return image_batch(n, len(NAMES), seed, TINY_RESOLUTION)


def dual(clip_model, teacher=TEACHER, **overrides):
    """DualPromptMI over PromptSRC's prompts of SRC_PROMPT, its aggregation at GPA (``overrides``: its options)."""
    epochs, mean, std = GPA
    config = DualPromptMIConfig(**{**DUAL_PROMPT, "src_gpa_mean": mean, "src_gpa_std": std, **overrides})
    return DualPromptMICLIP(clip_model, NAMES, HAND, config, teacher_templates=teacher, max_epoch=epochs)


def after(epoch, batches=()):
    """What the trainer hands ``end_epoch`` after (1-based) ``epoch``."""
    return SimpleNamespace(epoch=epoch - 1, batches=lambda: iter(batches), autocast=contextlib.nullcontext,
                           sync_statistics=lambda: None)


def test_with_its_terms_off_it_is_promptsrc_bit_for_bit(clip3):
    """Same seed: same prompts and random state after building, then three SGD steps and GPA over two
    epochs with the same losses, terms, gradients, aggregate and predictions, compared with torch.equal."""
    torch.manual_seed(11)
    src = PromptSRCCLIP(clip3, NAMES, TEACHER, gpa=GPA, **SRC_PROMPT)
    src_random = torch.get_rng_state()
    torch.manual_seed(11)
    mine = dual(clip3, **TERMS_OFF)
    assert torch.equal(torch.get_rng_state(), src_random)  # its own modules draw nothing: the run draws PromptSRC's
    assert torch.equal(mine.teacher_text, src.teacher_text)
    src_state, my_state = src.trainable_state_dict(), mine.trainable_state_dict()
    shared = [k for k in src_state if k.startswith(("prompt_learner.", "aggregate."))]
    assert set(src_state) == set(shared) and set(shared) <= set(my_state)
    models = {"src": src, "mine": mine}
    optims = {name: torch.optim.SGD([p for p in m.freeze_clip()], lr=0.5, momentum=0.9) for name, m in models.items()}
    for epoch in (1, 2):
        for step in range(3 if epoch == 1 else 2):
            x, y = batch(seed=10 * epoch + step)
            out = {}
            for name, model in models.items():
                loss, logits, terms = model.loss(x, y)
                optims[name].zero_grad()
                loss.backward()
                optims[name].step()
                out[name] = loss, logits, terms
            (loss_s, logits_s, terms_s), (loss_m, logits_m, terms_m) = out["src"], out["mine"]
            assert torch.equal(loss_m, loss_s) and torch.equal(logits_m, logits_s)
            assert set(terms_s) == {"ce", "l1_text", "l1_image", "kl"}
            assert set(terms_m) == {"loss_ce", "l1_text", "l1_image", "kl"}  # DualPromptMI's name of the CE
            assert torch.equal(terms_m["loss_ce"], terms_s["ce"])
            assert all(torch.equal(terms_m[k], terms_s[k]) and terms_s[k] > 0 for k in ("l1_text", "l1_image", "kl"))
            for (key, p_s), (_, p_m) in zip(src.prompt_learner.named_parameters(), mine.prompt_learner.named_parameters()):
                assert torch.equal(p_m.grad, p_s.grad) and torch.equal(p_m, p_s), key
        message = mine.end_epoch(after(epoch))
        assert message == src.end_epoch(after(epoch))
    assert message and "weighted mean over 2 epochs" in message
    src_state, my_state = src.trainable_state_dict(), mine.trainable_state_dict()
    for key in shared:
        assert torch.equal(my_state[key], src_state[key]), key
    x, _ = batch(seed=99)
    with torch.no_grad(), src.cached_text_features(), mine.cached_text_features():
        assert torch.equal(mine.predict(x)["main"], src.predict(x)["main"])


@pytest.mark.parametrize("overrides", [
    {}, {"mi_mode": "critic", "mi_learn_projection": True, "mi_learn_tau": True}, {"mi_mode": "views_nce", "mi_nce_learn_tau": True},
    {"mi_mode": "posterior", "mi_learn_temperature": True}, {"mi_gauss_learn_var": True, "mi_gauss_learn_map": True},
    {"vision_mi_weight": 1.0}])
def test_its_own_modules_draw_no_random_numbers(clip3, overrides):
    """Whatever DualPromptMI's terms, building it draws what PromptSRC's build draws (the prompts' init):
    the run's batch order and augmentations are then PromptSRC's."""
    torch.manual_seed(3)
    PromptSRCCLIP(clip3, NAMES, TEACHER, gpa=GPA, **SRC_PROMPT)
    expected = torch.get_rng_state()
    torch.manual_seed(3)
    dual(clip3, **overrides)
    assert torch.equal(torch.get_rng_state(), expected)


def test_the_teacher_is_promptsrcs_own(clip3, monkeypatch):
    """How PromptSRC ensembles its teacher's templates is one function: change it and both models follow."""
    from clipprompt.methods import promptsrc

    monkeypatch.setattr(promptsrc, "encode_hand_crafted", lambda backbone, names, templates, **how: torch.ones(len(names), 7))
    assert torch.equal(dual(clip3).teacher_text, torch.ones(len(NAMES), 7))
    assert torch.equal(PromptSRCCLIP(clip3, NAMES, TEACHER, **SRC_PROMPT).teacher_text, torch.ones(len(NAMES), 7))


def _loss(model, x, y, seed=5):
    torch.manual_seed(seed)  # the same mixup draw
    return model.loss(x, y)


def _with_prototypes(model, x, y):
    model.refresh_prototypes([(x, y)])
    return model


# Each of DualPromptMI's terms over promptsrc, switched on alone: (overrides, the term it logs).
TERMS = [
    *[({"mi_weight": 8.0, "mi_mode": mode}, "mi_views") for mode in ("gaussian", "posterior", "views_nce")],
    *[({"mi_weight": 1.0, "mi_mode": "critic", "mi_estimator": estimator}, "mi_views")
      for estimator in ("infonce", "jsd", "dv")],
    ({"aug_weight": 0.25}, "loss_aug"),
    ({"aug_weight": 0.25, "aug_mode": "intra"}, "loss_aug"),
    ({"mi_weight": 1.0, "mi_mode": "posterior", "aug_feed_view_mi": True}, "mi_views"),
    ({"vision_mi_weight": 3.0}, "mi_vision"),
]


@pytest.mark.parametrize("overrides,term", TERMS, ids=lambda v: "-".join(map(str, v.values())) if isinstance(v, dict) else v)
def test_each_dualpromptmi_term_changes_the_loss(clip3, overrides, term):
    x, y = batch(seed=3)
    torch.manual_seed(0)
    base = _with_prototypes(dual(clip3, **TERMS_OFF), x, y)
    torch.manual_seed(0)
    on = _with_prototypes(dual(clip3, **{**TERMS_OFF, **overrides}), x, y)
    on.prompt_learner.load_state_dict(base.prompt_learner.state_dict())
    loss_off, logits_off, terms_off = _loss(base, x, y)
    loss_on, logits_on, terms_on = _loss(on, x, y)
    assert torch.equal(logits_on, logits_off)  # same prompts: only the added term differs
    assert term in terms_on and term not in terms_off
    assert all(torch.equal(terms_on[k], terms_off[k]) for k in ("l1_text", "l1_image", "kl"))  # PromptSRC's stay
    assert abs(loss_on.item() - loss_off.item()) > 1e-6
    (grad_on,) = torch.autograd.grad(loss_on, on.prompt_learner.ctx, allow_unused=True)
    (grad_off,) = torch.autograd.grad(loss_off, base.prompt_learner.ctx)
    if term != "mi_vision":  # the vision term reaches only the vision prompts
        assert not torch.equal(grad_on, grad_off)


def test_the_inference_ensemble_changes_the_prediction_only(clip3):
    x, y = batch(seed=3)
    torch.manual_seed(0)
    soft = dual(clip3, **TERMS_OFF)
    torch.manual_seed(0)
    mixed = dual(clip3, **{**TERMS_OFF, "infer_weight": 0.5})
    mixed.prompt_learner.load_state_dict(soft.prompt_learner.state_dict())
    assert torch.equal(mixed.loss(x, y)[0], soft.loss(x, y)[0])
    with torch.no_grad(), soft.cached_text_features(), mixed.cached_text_features():
        plain, ensembled = soft.predict(x), mixed.predict(x)
        text = F.normalize(0.5 * mixed.soft_view() + 0.5 * mixed.hand_features, dim=-1)
    assert torch.equal(ensembled["soft_only"], plain["main"])
    torch.testing.assert_close(ensembled["main"], mixed.logits(mixed.encode_image(x), text))
    assert (ensembled["main"] - plain["main"]).abs().max() > 1e-4


def test_promptsrcs_options_are_declared_by_promptsrc():
    """Each PROMPTSRC.<KEY> of DualPromptMI is PromptSRC's <KEY>: its default and its help text."""
    theirs = {f.metadata["key"]: f for f in dataclasses.fields(PromptSRCOptions)}
    mine = {f.metadata["key"]: f for f in dataclasses.fields(DualPromptMIConfig)}
    taken = sorted(k for k in mine if k.startswith("PROMPTSRC."))
    assert taken == sorted(f"PROMPTSRC.{k}" for k in ("TEXT_LOSS_WEIGHT", "IMAGE_LOSS_WEIGHT", "KL_LOSS_WEIGHT", "GPA",
                                                        "GPA_MEAN", "GPA_STD", "HAND_TEMPLATES", "TEACHER_ENSEMBLE"))
    defaults, src_defaults = DualPromptMIConfig(), PromptSRCOptions()
    for key in taken:
        ours, original = mine[key], theirs[key[len("PROMPTSRC."):]]
        assert getattr(defaults, ours.name) == getattr(src_defaults, original.name), key
        assert ours.metadata["help"] == original.metadata["help"], key
    # and its prompts' defaults are PromptSRC's published ones
    assert (defaults.n_ctx, defaults.ctx_init, defaults.deep_text_depth, defaults.deep_vision_n_ctx,
            defaults.deep_vision_depth) == (src_defaults.n_ctx_text, src_defaults.ctx_init, src_defaults.prompt_depth_text,
                                            src_defaults.n_ctx_vision, src_defaults.prompt_depth_vision)


@pytest.mark.parametrize("overrides,message", [
    ({"prompt_learner": "src"}, "TRAINER.DUALPROMPTMI.PROMPT_LEARNER must be one of coop, ivlp, maple, promptsrc"),
    ({"src_text_loss_weight": -1.0}, "TRAINER.DUALPROMPTMI.PROMPTSRC.TEXT_LOSS_WEIGHT must be >= 0, got -1.0"),
    ({"src_image_loss_weight": -1.0}, "TRAINER.DUALPROMPTMI.PROMPTSRC.IMAGE_LOSS_WEIGHT must be >= 0"),
    ({"src_kl_loss_weight": -0.5}, "TRAINER.DUALPROMPTMI.PROMPTSRC.KL_LOSS_WEIGHT must be >= 0"),
    ({"src_gpa_std": 0.0}, "TRAINER.DUALPROMPTMI.PROMPTSRC.GPA_STD must be positive"),
    ({"src_teacher_ensemble": "mean"}, "TRAINER.DUALPROMPTMI.PROMPTSRC.TEACHER_ENSEMBLE must be one of unit, raw"),
    ({"src_gpa_mean": 1e6}, "TRAINER.DUALPROMPTMI.PROMPTSRC.GPA_MEAN 1000000.0 with GPA_STD 1.0 gives no weight"),
    ({"csc": True}, "TRAINER.DUALPROMPTMI.PROMPT_LEARNER promptsrc: deep prompts need a shared context"),
    ({"deep_text_depth": 4}, "TRAINER.DUALPROMPTMI.DEEP.TEXT_DEPTH must lie in 1..3"),
    ({"deep_vision_depth": 5}, "TRAINER.DUALPROMPTMI.DEEP.VISION_DEPTH must lie in 1..3"),
    ({"deep_vision_n_ctx": 0, "vision_mi_weight": 1.0}, "VISION_MI.WEIGHT needs vision prompts (PROMPT_LEARNER ivlp or promptsrc"),
])
def test_bad_settings_are_one_line_naming_the_key(clip3, overrides, message):
    with pytest.raises(UserError) as info:
        dual(clip3, **overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_gpa_off_and_weights_off_leave_no_aggregate_and_no_frozen_pass(clip3):
    model = dual(clip3, src_gpa=False, src_text_loss_weight=0.0, src_image_loss_weight=0.0, src_kl_loss_weight=0.0,
                 **TERMS_OFF)
    assert model.aggregate is None and model.end_epoch(after(1)) is None
    assert not any(k.startswith("aggregate.") for k in model.trainable_state_dict())
    frozen_passes = []
    model.encode_image_frozen = lambda image: frozen_passes.append(1)
    loss, _, terms = model.loss(*batch())
    assert set(terms) == {"loss_ce"} and frozen_passes == []


def test_prompt_depths_cover_promptsrc():
    from yacs.config import CfgNode as CN

    from clipprompt.config import extend_cfg
    from clipprompt.methods import get_method

    cfg = CN()
    cfg.MODEL, cfg.DATASET, cfg.TRAINER = CN(), CN(), CN()
    cfg.MODEL.BACKBONE = CN()
    cfg = extend_cfg(cfg)
    method = get_method("DualPromptMI")
    assert method.prompt_depths(cfg) == []  # coop
    cfg.TRAINER.DUALPROMPTMI.PROMPT_LEARNER = "promptsrc"
    assert method.prompt_depths(cfg) == [("TRAINER.DUALPROMPTMI.DEEP.TEXT_DEPTH", "text", 9),
                                         ("TRAINER.DUALPROMPTMI.DEEP.VISION_DEPTH", "image", 9)]
    cfg.TRAINER.DUALPROMPTMI.DEEP.VISION_N_CTX = 0
    assert method.prompt_depths(cfg) == [("TRAINER.DUALPROMPTMI.DEEP.TEXT_DEPTH", "text", 9)]


def test_the_promptsrc_config_is_promptsrcs_published_run():
    """configs/trainers/DualPromptMI/*_promptsrc.yaml: PromptSRC's published config in every shared key
    (schedule, data, prompts, its options spelt out), DualPromptMI's own keys on top."""
    import yaml

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "configs/trainers/DualPromptMI/vit_b16_c2_ep20_batch4_4+4ctx_promptsrc.yaml")) as f:
        mine = yaml.safe_load(f)
    with open(os.path.join(repo, "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml")) as f:
        theirs = yaml.safe_load(f)
    assert {k: v for k, v in mine.items() if k != "TRAINER"} == {k: v for k, v in theirs.items() if k != "TRAINER"}
    dual_node, src_node = mine["TRAINER"]["DUALPROMPTMI"], theirs["TRAINER"]["PROMPTSRC"]
    assert dual_node["PROMPT_LEARNER"] == "promptsrc"
    prompts = {"N_CTX": "N_CTX_TEXT", "CTX_INIT": "CTX_INIT", "PREC": "PREC"}
    assert {k: dual_node[k] for k in prompts} == {k: src_node[v] for k, v in prompts.items()}
    deep = {"TEXT_DEPTH": "PROMPT_DEPTH_TEXT", "VISION_N_CTX": "N_CTX_VISION", "VISION_DEPTH": "PROMPT_DEPTH_VISION"}
    assert dual_node["DEEP"] == {k: src_node[v] for k, v in deep.items()}
    published = dataclasses.asdict(PromptSRCOptions())
    for key, value in dual_node["PROMPTSRC"].items():  # every one written, equal to PromptSRC's run
        field = next(f.name for f in dataclasses.fields(PromptSRCOptions) if f.metadata["key"] == key)
        assert value == src_node.get(key, published[field]), key
    assert set(dual_node["PROMPTSRC"]) == {k[len("PROMPTSRC."):] for k in DualPromptMIConfig.keys() if k.startswith("PROMPTSRC.")}


# ----- class prototypes, the aggregate and the predictions ------------------------------------

def test_prototypes_follow_the_promptsrc_image_tower(clip3):
    assert dual(clip3).prototypes_follow_image_tower  # the default mixup on prompted image features
    assert not dual(clip3, aug_weight=0.0).prototypes_follow_image_tower
    assert not dual(clip3, deep_vision_n_ctx=0).prototypes_follow_image_tower  # frozen CLIP's image tower


def test_after_the_aggregate_the_prototypes_and_predictions_are_the_aggregates(clip3):
    torch.manual_seed(0)
    model = dual(clip3, infer_weight=0.5)
    train = [batch(5, seed=s) for s in range(2)]
    optim = torch.optim.SGD(model.freeze_clip(), lr=1.0)
    snapshots = []
    for epoch in (1, 2):
        model.refresh_prototypes(train)  # what begin_epoch does
        for x, y in train:
            loss = model.loss(x, y)[0]
            optim.zero_grad()
            loss.backward()
            optim.step()
        snapshots.append({k: v.detach().clone() for k, v in model.prompt_learner.named_parameters()})
        stale = model.prototypes.prototypes().clone()
        message = model.end_epoch(after(epoch, train))
    assert "weighted mean over 2 epochs" in message and "Class prototypes from 10 training images (the aggregated prompts)" in message
    w1, w2 = gaussian_epoch_weights(*GPA)
    for name, param in model.prompt_learner.named_parameters():  # the prompts are the aggregate
        torch.testing.assert_close(param, w1 * snapshots[0][name] + w2 * snapshots[1][name], rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        features = torch.cat([model.encode_image(x) for x, _ in train])
    labels = torch.cat([y for _, y in train])
    expected = F.normalize(torch.stack([features[labels == c].mean(dim=0) for c in range(len(NAMES))]), dim=1)
    assert (stale - expected).abs().max() > 1e-4  # the epoch-2 prototypes described other prompts
    torch.testing.assert_close(model.prototypes.prototypes(), expected, rtol=0, atol=1e-5)
    x, _ = batch(4, seed=7)
    with torch.no_grad(), model.cached_text_features():
        predicted = model.predict(x)["main"]
        text = F.normalize(0.5 * model.encode_prompts() + 0.5 * model.hand_features, dim=-1)
    torch.testing.assert_close(predicted, model.logits(model.encode_image(x), text), rtol=0, atol=1e-5)


# ----- through train.py: the PromptSRC trainer and DualPromptMI over promptsrc, two epochs ----------
# The integration tests' tiny CLIP (3 blocks) and OxfordPets; Dassl's random sampler and random flips.
SRC_RUN = ["TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "3", "TRAINER.PROMPTSRC.N_CTX_VISION", "2",
           "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2", "TRAINER.PROMPTSRC.GPA_MEAN", "1.5",
           "TRAINER.PROMPTSRC.GPA_STD", "1.0", "TRAINER.PROMPTSRC.HAND_TEMPLATES", str(TEACHER)]
DUAL_RUN = [*DUAL_LEARNERS["promptsrc"], "TRAINER.DUALPROMPTMI.PROMPTSRC.HAND_TEMPLATES", str(TEACHER),
            "TRAINER.DUALPROMPTMI.MI.WEIGHT", "0.0", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "0.0",
            "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "1.0"]
RUN = [*TINY, "DATALOADER.TRAIN_X.BATCH_SIZE", "2", "OPTIM.LR", "0.05", "TRAIN.CHECKPOINT_FREQ", "1",
       "TEST.NO_TEST", "True"]


def _scalars(folder):
    from tools.fingerprint import read_tensorboard

    (path,) = glob.glob(os.path.join(folder, "tensorboard", "events.out.tfevents.*"))
    return read_tensorboard(path)


@requires_dassl
def test_train_py_with_the_terms_off_is_the_promptsrc_trainer(tmp_path, pets_root, tiny_clip3_path, tiny_cfg_file):
    from helpers import ctx_of

    runs = {}
    for trainer, opts in (("PromptSRC", SRC_RUN), ("DualPromptMI", DUAL_RUN)):
        out = str(tmp_path / trainer)
        proc = ok(run_cli(train_args(pets_root, out, tiny_clip3_path, tiny_cfg_file, trainer=trainer, extra=[*RUN, *opts])))
        assert "the prompts are the weighted mean over 2 epochs" in proc.stdout
        runs[trainer] = out
    src, mine = (_scalars(runs[t]) for t in ("PromptSRC", "DualPromptMI"))
    steps = len(src["train/loss"])
    assert steps == 2 * 4 and len({value for _, value in src["train/loss"]}) > 1  # 2 epochs x 4 batches of 2 (8 shots)
    # Dassl records every step's running mean per epoch (float32): the same values at every step
    for tag in ("train/loss", "train/acc", "train/l1_text", "train/l1_image", "train/kl", "train/lr"):
        assert mine[tag] == src[tag], tag
    assert mine["train/loss_ce"] == src["train/ce"]
    for epoch in (1, 2):  # every prompt tensor and every aggregate sum of both checkpoints, exactly
        theirs, ours = ctx_of(runs["PromptSRC"], epoch), ctx_of(runs["DualPromptMI"], epoch)
        assert set(theirs) == {k for k in ours if k.startswith(("prompt_learner.", "aggregate."))}
        for key in theirs:
            assert torch.equal(ours[key], theirs[key]), (epoch, key)
    last = ctx_of(runs["PromptSRC"], 2)
    assert not torch.equal(last["prompt_learner.ctx"], ctx_of(runs["PromptSRC"], 1)["prompt_learner.ctx"])
    assert torch.equal(last["prompt_learner.ctx"], last["aggregate.sum_0"])  # the aggregate is in the checkpoint
    # and both evaluate the new classes (teacher and views rebuilt for them) with the same accuracy
    accuracy = {}
    for trainer, opts in (("PromptSRC", SRC_RUN), ("DualPromptMI", DUAL_RUN)):
        out = str(tmp_path / f"{trainer}_new")
        ok(run_cli(train_args(pets_root, out, tiny_clip3_path, tiny_cfg_file, trainer=trainer, subsample="new",
                              extra=["--model-dir", runs[trainer], "--eval-only", *RUN, *opts])))
        accuracy[trainer] = results(out)["accuracy"]
    assert accuracy["DualPromptMI"] == accuracy["PromptSRC"]
    # an interrupted run (only the epoch-1 checkpoint) resumes to the same aggregate
    cut = tmp_path / "cut"
    (cut / "prompt_learner").mkdir(parents=True)
    shutil.copy(os.path.join(runs["DualPromptMI"], "prompt_learner", "model.pth.tar-1"), cut / "prompt_learner")
    ok(run_cli(train_args(pets_root, str(cut), tiny_clip3_path, tiny_cfg_file, extra=["--resume", str(cut), *RUN, *DUAL_RUN])))
    resumed, full = ctx_of(str(cut), 2), ctx_of(runs["DualPromptMI"], 2)
    assert set(resumed) == set(full) and all(torch.equal(resumed[k], full[k]) for k in full)


@requires_dassl
def test_train_py_refuses_bad_promptsrc_settings_in_one_line(tmp_path, pets_root, tiny_clip3_path, tiny_cfg_file):
    proc = run_cli(train_args(pets_root, str(tmp_path / "deep"), tiny_clip3_path, tiny_cfg_file,
                              extra=[*TINY, "TRAINER.DUALPROMPTMI.PROMPT_LEARNER", "promptsrc",
                                     "TRAINER.DUALPROMPTMI.DEEP.TEXT_DEPTH", "3", "TRAINER.DUALPROMPTMI.DEEP.VISION_DEPTH", "4"]))
    user_error(proc, "TRAINER.DUALPROMPTMI.DEEP.VISION_DEPTH must lie in 1..3 (the image tower's blocks), got 4")
    proc = run_cli(train_args(pets_root, str(tmp_path / "std"), tiny_clip3_path, tiny_cfg_file,
                              extra=[*TINY, *DUAL_RUN, "TRAINER.DUALPROMPTMI.PROMPTSRC.GPA_STD", "0.0"]))
    user_error(proc, "TRAINER.DUALPROMPTMI.PROMPTSRC.GPA_STD must be positive, got 0.0")
