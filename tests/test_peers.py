"""KgCoOp and ProGrad: the library pieces, then train.py and the scripts through real Dassl."""

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from clipprompt.methods.coop import CoOpCLIP
from clipprompt.methods.kgcoop import KgCoOpCLIP
from clipprompt.methods.prograd import ProGradCLIP
from clipprompt.objectives.guidance import knowledge_guidance, prograd_gradients, project_conflicting, zero_shot_kl
from clipprompt.prompts.hand import encode_hand_crafted
from clipprompt.clip.backbone import as_backbone
from conftest import TINY_RESOLUTION, requires_dassl, run_cli
from helpers import TINY, ctx_of, ok, results, train_args, user_error

NAMES = ["dog", "cat", "sea lion", "car"]
TEMPLATE = ["a photo of a {}, a type of pet."]


def images(n, seed=0):
    return torch.randn(n, 3, TINY_RESOLUTION, TINY_RESOLUTION, generator=torch.Generator().manual_seed(seed))


# ----- KgCoOp ---------------------------------------------------------------------------

def test_knowledge_guidance_on_known_cases():
    e = torch.eye(3)
    assert knowledge_guidance(e, e).item() == pytest.approx(0.0, abs=1e-6)
    assert knowledge_guidance(e, -e).item() == pytest.approx(2.0)
    assert knowledge_guidance(e, e.roll(1, dims=0)).item() == pytest.approx(1.0)
    # mean over classes of 1 - cos: angles 0 and 60 degrees, unnormalised inputs
    soft = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    hand = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    assert knowledge_guidance(soft, hand).item() == pytest.approx(1 - (1 + 0.5) / 2)
    # on unit vectors it is half the squared L2 distance (the paper's form)
    a, b = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    assert knowledge_guidance(a, b).item() == pytest.approx(0.5 * (a - b).pow(2).sum(-1).mean().item(), rel=1e-5)


def test_kgcoop_weight_zero_is_coop_exactly(tiny_clip):
    torch.manual_seed(0)
    coop = CoOpCLIP(tiny_clip, NAMES, n_ctx=4, ctx_init="a photo of a")
    torch.manual_seed(0)
    kg = KgCoOpCLIP(tiny_clip, NAMES, TEMPLATE, weight=0.0, n_ctx=4, ctx_init="a photo of a")
    x, y = images(3), torch.tensor([0, 2, 3])
    coop_logits = coop(x)
    loss, logits, terms = kg.loss(x, y)
    assert torch.equal(logits, coop_logits)
    assert torch.equal(loss, F.cross_entropy(coop_logits, y))
    assert terms["kg"] > 0  # the term is there, only weighted by 0
    assert torch.equal(kg.predict(x)["main"], coop.predict(x)["main"])
    loss.backward()
    F.cross_entropy(coop(x), y).backward()
    assert torch.equal(kg.prompt_learner.ctx.grad, coop.prompt_learner.ctx.grad)


def test_kgcoop_term_value_and_gradient_reach_the_context(tiny_clip):
    model = KgCoOpCLIP(tiny_clip, NAMES, TEMPLATE, weight=8.0, n_ctx=4, ctx_init="a photo of a")
    torch.testing.assert_close(model.hand_features, encode_hand_crafted(as_backbone(tiny_clip), NAMES, TEMPLATE))
    x, y = images(2), torch.tensor([1, 0])
    loss, logits, terms = model.loss(x, y)
    soft = model.compute_text_features()
    expected = 1 - F.cosine_similarity(soft, model.hand_features, dim=-1).mean()
    assert terms["kg"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item() + 8.0 * expected.item(), rel=1e-6)
    # the term alone moves the context, and only the context
    model.zero_grad()
    knowledge_guidance(model.compute_text_features(), model.hand_features).backward()
    assert model.prompt_learner.ctx.grad is not None and model.prompt_learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.text_encoder.parameters())
    # the hand view is rebuilt per class set, never checkpointed
    assert set(model.trainable_state_dict()) == {"prompt_learner.ctx"}


# ----- ProGrad ---------------------------------------------------------------------------

def test_projection_removes_the_conflicting_component():
    g, h = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 1.0, 1.0])
    assert torch.dot(g, h) < 0
    (p,) = project_conflicting([g], [h])
    assert torch.dot(p, h).abs() < 1e-6  # orthogonal to the KL gradient
    torch.testing.assert_close(p, g - torch.dot(g, h) / torch.dot(h, h) * h)
    assert torch.dot(p, g) > 0  # still a descent direction for the task loss
    (half,) = project_conflicting([g], [h], lam=0.5)
    torch.testing.assert_close(half, g - 0.5 * torch.dot(g, h) / torch.dot(h, h) * h)


def test_projection_leaves_agreeing_or_degenerate_gradients_unchanged():
    g = torch.tensor([1.0, 2.0, 0.5])
    for h in (torch.tensor([0.0, 1.0, 1.0]), torch.tensor([2.0, -1.0, 0.0]), torch.zeros(3)):  # agree, orthogonal, zero
        (p,) = project_conflicting([g], [h])
        assert torch.equal(p, g)
    assert project_conflicting([None, g], [g, None]) == [None, g]


def test_projection_is_per_tensor_on_multi_tensor_gradients():
    torch.manual_seed(0)
    h = [torch.randn(4, 3), torch.randn(5), torch.randn(2, 2)]
    g = [-h[0] + 0.1 * torch.randn(4, 3), h[1] + 0.1 * torch.randn(5), torch.randn(2, 2)]
    out = project_conflicting(g, h)
    for gi, hi, oi in zip(g, h, out):
        assert oi.shape == gi.shape
        if torch.sum(gi * hi) < 0:
            assert torch.sum(oi * hi).abs() < 1e-5
        else:
            assert torch.equal(oi, gi)
    assert torch.sum(g[0] * h[0]) < 0 and torch.sum(g[1] * h[1]) > 0  # both branches exercised


def test_zero_shot_kl_is_kl_with_prograd_gradient():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 5, requires_grad=True), torch.randn(4, 5)
    assert zero_shot_kl(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-6)
    p = F.softmax(teacher / 2.0, -1)
    kl = zero_shot_kl(student, teacher, temperature=2.0)
    expected = (p * (p.log() - F.log_softmax(student / 2.0, -1))).sum(-1).mean() * 4.0
    assert kl.item() == pytest.approx(expected.item(), rel=1e-5)
    # same gradient as ProGrad's cross-entropy form -T^2 sum p log q
    (g_kl,) = torch.autograd.grad(kl, student)
    (g_ce,) = torch.autograd.grad(-(p * F.log_softmax(student / 2.0, -1)).sum(-1).mean() * 4.0, student)
    torch.testing.assert_close(g_kl, g_ce)


def test_prograd_gradients_on_the_model_and_scale_invariance(tiny_clip):
    torch.manual_seed(0)
    model = ProGradCLIP(tiny_clip, NAMES, TEMPLATE, n_ctx=4, ctx_init="a photo of a")
    x, y = images(4), torch.tensor([0, 1, 2, 3])
    params = [model.prompt_learner.ctx]

    def losses():
        student, teacher = model.student_and_teacher_logits(x)
        assert not teacher.requires_grad
        torch.testing.assert_close(teacher, model.logits(model.encode_image(x), model.hand_features))
        return F.cross_entropy(student, y), zero_shot_kl(student, teacher)

    # The guide's sign decides the branch: the KL's gradient and its negation lie on opposite sides of
    # the CE gradient, so one of the two conflicts with it and the other agrees, whatever the seed.
    branches = set()
    for sign in (1.0, -1.0):
        ce, kl = losses()
        guide = sign * kl
        (g_ce,) = torch.autograd.grad(ce, params, retain_graph=True)
        (g_guide,) = torch.autograd.grad(guide, params, retain_graph=True)
        (proj,) = prograd_gradients(ce, guide, params)
        if torch.sum(g_ce * g_guide) < 0:
            branches.add("conflict")
            assert torch.sum(proj * g_guide).abs() < 1e-4 * g_ce.norm() * g_guide.norm()
            assert not torch.equal(proj, g_ce)
        else:
            branches.add("agree")
            assert torch.equal(proj, g_ce)
        # GradScaler multiplies both losses by s: the projected gradient scales by s
        ce, kl = losses()
        (scaled,) = prograd_gradients(ce * 1024.0, sign * kl * 1024.0, params)
        torch.testing.assert_close(scaled / 1024.0, proj)
    assert branches == {"conflict", "agree"}  # both branches exercised


# ----- through train.py -----------------------------------------------------------------

@requires_dassl
@pytest.mark.parametrize("prec", ["fp32", "amp"])
def test_prograd_train_step_follows_the_projection(tmp_path, monkeypatch, pets_root, tiny_clip_path, tiny_cfg_file, prec):
    """One step of the Dassl trainer: the context moves by -LR times the projected CE gradient
    (amp: bfloat16 autocast on the CPU with a loss scaler, which the projection must not disturb)."""
    from dassl.config import get_cfg_default
    from dassl.engine import build_trainer

    import datasets  # noqa: F401  (registers the datasets)
    import trainers  # noqa: F401  (registers the trainers)
    from clipprompt.config import extend_cfg

    monkeypatch.setenv("CLIPPROMPT_CPU_HALF", "1")
    cfg = extend_cfg(get_cfg_default())
    cfg.merge_from_file(tiny_cfg_file)
    cfg.merge_from_list(["DATASET.ROOT", pets_root, "DATASET.NAME", "OxfordPets", "DATASET.NUM_SHOTS", "2",
                         "DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.NAME", "ProGrad", "MODEL.BACKBONE.PATH",
                         tiny_clip_path, "TRAINER.PROGRAD.PREC", prec, "OPTIM.LR", "0.5", "OPTIM.WARMUP_EPOCH", "0",
                         "OPTIM.WEIGHT_DECAY", "0.0", "SEED", "1", "USE_CUDA", "False", "OUTPUT_DIR", str(tmp_path)])
    trainer = build_trainer(cfg)
    assert (trainer.scaler is not None) == (prec == "amp")
    trainer.batch_idx, trainer.num_batches = 0, 2
    batch = next(iter(trainer.train_loader_x))
    image, label = trainer.parse_batch_train(batch)
    ctx = trainer.model.prompt_learner.ctx
    before = ctx.detach().clone()
    with trainer.autocast():
        student, teacher = trainer.model.student_and_teacher_logits(image)
        ce, kl = F.cross_entropy(student, label), zero_shot_kl(student, teacher)
    expected = prograd_gradients(ce, kl, [ctx])[0]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # logging the live KL term must not warn (it is read detached)
        summary = trainer.forward_backward(batch)
    assert set(summary) == {"loss", "kl", "acc"}
    assert summary["loss"] == pytest.approx(ce.item()) and summary["kl"] == pytest.approx(kl.item())
    # first SGD step: the momentum buffer is the gradient; the scaler's factor is divided out
    torch.testing.assert_close(ctx.detach(), before - 0.5 * expected)


@requires_dassl
def test_peer_bad_keys_are_one_line_errors(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    for trainer, key, value, fragment in (("KgCoOp", "TRAINER.KGCOOP.W", "-1.0", "TRAINER.KGCOOP.W"),
                                          ("ProGrad", "TRAINER.PROGRAD.T", "0.0", "TRAINER.PROGRAD.T"),
                                          ("ProGrad", "TRAINER.PROGRAD.HAND_TEMPLATES", "['nope']", "nope")):
        proc = run_cli(train_args(pets_root, str(tmp_path / key), tiny_clip_path, tiny_cfg_file, trainer=trainer,
                                  extra=[*TINY, key, value]))
        user_error(proc, fragment)


@requires_dassl
def test_peer_scripts_checkpoints_base_to_new_and_table(tmp_path, pets_root, tiny_clip_path):
    """Both peers through the protocol scripts with their published configs (the scripts' defaults)."""
    env = {"DATA": pets_root, "OUTPUT": str(tmp_path / "output"), "SHOTS": "2", "PYTHON": sys.executable}
    opts = ["MODEL.BACKBONE.PATH", tiny_clip_path, *TINY]
    cfgs = {"KgCoOp": "vit_b16_c4_ep100_batch128_ctxv1", "ProGrad": "vit_b16_c4_ep100_batch32_ctxv1"}
    tree = os.path.join(env["OUTPUT"], "base2new")
    for trainer, cfg in cfgs.items():
        proc = ok(run_cli(["bash", "scripts/base2new_train.sh", "oxford_pets", "1", *opts, "TRAIN.CHECKPOINT_FREQ", "1"],
                          env_extra={**env, "TRAINER": trainer}))
        assert "a photo of a {}, a type of pet." in proc.stdout  # the dataset's template as the hand view
        ok(run_cli(["bash", "scripts/base2new_test.sh", "oxford_pets", "1", *opts],
                   env_extra={**env, "TRAINER": trainer, "LOADEP": "1"}))
        base = os.path.join(tree, f"train_base/oxford_pets/shots_2/{trainer}/{cfg}/seed1")
        new = os.path.join(tree, f"test_new/oxford_pets/shots_2/{trainer}/{cfg}/seed1")
        res, res_new = results(base), results(new)
        assert (res["trainer"], res["config"], res["subsample"], res["epoch"], res["num_samples"]) == \
            (trainer, cfg, "base", 2, 4 * 3)  # 4 base classes (ceil 7/2) x 3 test images
        assert (res_new["trainer"], res_new["subsample"], res_new["epoch"], res_new["num_samples"]) == \
            (trainer, "new", 1, 3 * 3)
        with open(os.path.join(new, "log.txt")) as f:
            assert "class-independent state only" in f.read()
        first, last = ctx_of(base, 1), ctx_of(base, 2)  # weights_only=True; only the context is saved
        assert set(last) == {"prompt_learner.ctx"}
        assert not torch.equal(first["prompt_learner.ctx"], last["prompt_learner.ctx"])
    # a checkpoint of one peer is refused by the other, by name
    proc = run_cli(train_args(pets_root, str(tmp_path / "x"), tiny_clip_path,
                              f"configs/trainers/ProGrad/{cfgs['ProGrad']}.yaml", trainer="ProGrad", subsample="new",
                              extra=["--model-dir", os.path.join(tree, f"train_base/oxford_pets/shots_2/KgCoOp/{cfgs['KgCoOp']}/seed1"),
                                     "--eval-only", *TINY]))
    user_error(proc, "trained with KgCoOp, not ProGrad")

    opts += ["OPTIM.MAX_EPOCH", "1"]
    ok(run_cli(["bash", "scripts/fewshot_train.sh", "oxford_pets", "1", *opts], env_extra={**env, "TRAINER": "KgCoOp"}))
    xd_env = {**env, "TRAINER": "ProGrad", "SOURCE": "oxford_pets"}
    ok(run_cli(["bash", "scripts/xd_train.sh", "1", *opts], env_extra=xd_env))
    ok(run_cli(["bash", "scripts/xd_test.sh", "oxford_pets", "1", *opts], env_extra=xd_env))
    out = env["OUTPUT"]
    few = results(os.path.join(out, f"fewshot/oxford_pets/shots_2/KgCoOp/{cfgs['KgCoOp']}/seed1"))
    assert few["subsample"] == "all" and few["num_samples"] == 7 * 3
    xd = results(os.path.join(out, f"xd/evaluation/ProGrad/{cfgs['ProGrad']}/oxford_pets/seed1"))
    assert xd["trainer"] == "ProGrad" and xd["epoch"] == 1

    proc = ok(run_cli(["parse_test_res.py", tree]))
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("OxfordPets")]
    assert [row[1] for row in rows] == ["KgCoOp", "ProGrad"]  # the table's trainer order
    plot = str(tmp_path / "b2n.png")
    proc = ok(run_cli(["-m", "tools.plot_base_new", tree, "--out", plot]))
    assert os.path.getsize(plot) > 0


def test_hand_template_entries_expand_to_the_dataset_prompts():
    """HAND_TEMPLATES entries: "dataset_ensemble" is the dataset's own ensemble, else CoOp's ZeroshotCLIP2 set
    (Dassl-free: the expansion lives beside the templates)."""
    from clipprompt.errors import UserError
    from clipprompt.prompts.templates import IMAGENET_ENSEMBLE_TEMPLATES, PROMPTSRC_TEMPLATES, dataset_template, expand_templates

    own = ["a {} on sale.", "an old {}."]
    assert expand_templates(["dataset_ensemble"], "a {} pet.", own) == own
    assert expand_templates(["dataset_ensemble"], "a {} pet.", None) == ["a {} pet.", *IMAGENET_ENSEMBLE_TEMPLATES]
    assert expand_templates(["dataset"], dataset_template("OxfordPets")) == ["a photo of a {}, a type of pet."]
    assert expand_templates(["promptsrc_ensemble"], "a {}.") == PROMPTSRC_TEMPLATES and len(PROMPTSRC_TEMPLATES) == 60
    # duplicates collapse, order kept
    assert expand_templates(["dataset", "dataset_ensemble", "x {}"], "an old {}.", own) == ["an old {}.", "a {} on sale.", "x {}"]
    with pytest.raises(UserError, match="'dataset_ensemble'"):
        expand_templates(["ensemble"], "a {}.")


@requires_dassl
def test_benchmark_datasets_offer_their_mini_clip_caption_templates():
    from benchmarks import fashion_colours as fc
    from benchmarks import fashion_mnist as fm
    from benchmarks.mini_clip.captions import CaptionSampler, ColourCaptionSampler
    from datasets.fashion_colours import FashionColours
    from datasets.fashion_mnist import FashionMNIST

    assert FashionMNIST.ensemble_templates == fm.CAPTION_TEMPLATES == CaptionSampler.templates
    assert FashionColours.ensemble_templates == fc.CAPTION_TEMPLATES == ColourCaptionSampler.templates
    assert "a photo of a {}." in fc.CAPTION_TEMPLATES and not any("grayscale" in t for t in fc.CAPTION_TEMPLATES)
