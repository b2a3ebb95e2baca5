"""The GPU precision paths (PREC fp16 and amp) run on the CPU with a tiny CLIP.

fp16: OpenAI's half-precision layers (``load_clip(precision="fp16")``), as CoOp runs on a GPU;
CPU half matmuls are slow but fine at this size. amp: fp32 weights under autocast, which on
the CPU computes in bfloat16, with the trainers' loss scaler. Through ``train.py`` the trainers
keep fp16/amp on the CPU only with ``CLIPPROMPT_CPU_HALF=1`` (otherwise they fall back to fp32).
"""

import contextlib
import glob
import json
import math
import os
import re

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from clipprompt.clip.loader import load_clip
from clipprompt.methods.dualprompt import DualPromptMICLIP, DualPromptMIConfig
from clipprompt.methods.cocoop import CoCoOpCLIP
from clipprompt.methods.coop import CoOpCLIP
from clipprompt.methods.zeroshot import ZeroShotCLIP
from conftest import TINY_RESOLUTION, requires_dassl, run_cli

NAMES = ["dog", "cat", "sea lion", "car"]
TEMPLATE = "a photo of a {}."


def images(n, seed=0):
    return torch.randn(n, 3, TINY_RESOLUTION, TINY_RESOLUTION, generator=torch.Generator().manual_seed(seed))


def build(kind, clip_model, mi_mode="posterior"):
    if kind == "CoOp":
        return CoOpCLIP(clip_model, NAMES, n_ctx=4, ctx_init="a photo of a")
    if kind == "CoCoOp":
        return CoCoOpCLIP(clip_model, NAMES, n_ctx=4, ctx_init="a photo of a")
    return DualPromptMICLIP(clip_model, NAMES, [TEMPLATE], DualPromptMIConfig(mi_mode=mi_mode))


def loss_of(model, x, y):
    if isinstance(model, DualPromptMICLIP):
        model.observe(model.encode_image(x), y)
        return model.loss(x, y)
    logits = model(x)
    return F.cross_entropy(logits, y), logits, {}


@pytest.fixture()
def half_clip(tiny_clip_path):
    return load_clip("ViT-B/16", tiny_clip_path, precision="fp16")


def test_fp16_loader_keeps_openai_half_layers(half_clip, tiny_clip):
    assert half_clip.dtype == torch.float16 and tiny_clip.dtype == torch.float32
    assert half_clip.text_projection.dtype == torch.float16
    assert half_clip.transformer.resblocks[0].mlp.c_fc.weight.dtype == torch.float16
    assert half_clip.ln_final.weight.dtype == torch.float32  # CLIP's LayerNorm computes in fp32


@pytest.mark.parametrize("kind,mi_mode", [("CoOp", None), ("CoCoOp", None), ("DualPromptMI", "posterior"),
                                          ("DualPromptMI", "critic")])
def test_fp16_train_step(half_clip, kind, mi_mode):
    torch.manual_seed(0)
    model = build(kind, half_clip, mi_mode)
    ctx = model.prompt_learner.ctx
    assert ctx.dtype == torch.float16  # the context lives in CLIP's dtype, as in CoOp
    if kind == "DualPromptMI":
        assert model.hand_features.dtype == torch.float32  # cached hand view: normalised in fp32
    x, y = images(4), torch.tensor([0, 1, 2, 3])
    loss, logits, terms = loss_of(model, x, y)
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in terms.values())
    if kind == "DualPromptMI":
        assert "mi_views" in terms
    params = [p for n, p in model.named_parameters() if p.requires_grad]
    optim = torch.optim.SGD(params, lr=0.1)
    before = ctx.detach().clone()
    loss.backward()
    assert ctx.grad.dtype == torch.float16 and torch.isfinite(ctx.grad).all()
    optim.step()
    assert not torch.equal(ctx.detach(), before)
    # the short text pass is exact in fp16 too (within half-precision rounding)
    with torch.no_grad():
        short = model.text_encoder(model.prompt_learner(), model.prompt_learner.tokenized_prompts)
        model.text_encoder.full_context = True
        full = model.text_encoder(model.prompt_learner(), model.prompt_learner.tokenized_prompts)
    assert short.dtype == torch.float16
    # Half-precision kernels round differently with the sequence length and by CPU (on an AMD
    # EPYC the two passes differ by up to 2 fp16 ulps of the largest feature, 0.0037 at 2.94):
    # allow 4 ulps there. A wrong position or EOT pooling moves features by their whole scale;
    # the fp32 exactness (1e-5) is tested in tests/test_text_encoder.py.
    largest = full.float().abs().max().item()
    ulp = 2.0 ** (math.floor(math.log2(largest)) - 10)  # fp16 has 10 mantissa bits
    torch.testing.assert_close(short.float(), full.float(), rtol=0, atol=4 * ulp)


def test_fp16_zero_shot_and_evaluation_cache(half_clip):
    zs = ZeroShotCLIP(half_clip, NAMES, [TEMPLATE, "itap of a {}."])
    assert zs.class_text_features.dtype == torch.float32
    dual = build("DualPromptMI", half_clip)
    with torch.no_grad(), dual.cached_text_features():
        outputs = dual.predict(images(3))
        assert dual._text_cache.dtype == torch.float32
    assert set(outputs) == {"main", "soft_only", "hand_only"}
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in outputs.values())


@pytest.mark.parametrize("kind,mi_mode", [("CoOp", None), ("CoCoOp", None), ("DualPromptMI", "posterior"),
                                          ("DualPromptMI", "critic")])
def test_amp_bfloat16_autocast_train_step_with_loss_scaler(tiny_clip, kind, mi_mode):
    torch.manual_seed(0)
    model = build(kind, tiny_clip, mi_mode)
    ctx = model.prompt_learner.ctx
    assert ctx.dtype == torch.float32  # amp: fp32 master weights
    x, y = images(4, seed=1), torch.tensor([3, 2, 1, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits, terms = loss_of(model, x, y)
    assert logits.dtype == torch.bfloat16  # autocast matmul; evaluation casts with .float()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in terms.values())
    scaler = torch.amp.GradScaler("cpu")
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    before = ctx.detach().clone()
    scaler.scale(loss).backward()
    assert ctx.grad.dtype == torch.float32 and torch.isfinite(ctx.grad).all()
    scaler.step(optim)
    scaler.update()
    assert scaler.get_scale() == 65536.0  # finite gradients: the step was taken, the scale kept
    assert not torch.equal(ctx.detach(), before)


@requires_dassl
@pytest.mark.parametrize("trainer,prec", [("DualPromptMI", "fp16"), ("CoCoOp", "amp")])
def test_train_py_runs_fp16_and_amp_on_cpu_when_asked(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file, trainer, prec):
    key = {"DualPromptMI": "DUALPROMPTMI", "CoCoOp": "COCOOP"}[trainer]
    out = tmp_path / "run"
    args = ["train.py", "--root", pets_root, "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/oxford_pets.yaml", "--config-file", tiny_cfg_file,
            "--output-dir", str(out), "MODEL.BACKBONE.PATH", tiny_clip_path, "DATASET.NUM_SHOTS", "2",
            "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", "1", f"TRAINER.{key}.PREC", prec,
            f"TRAINER.{key}.N_CTX", "4", "DATALOADER.TRAIN_X.BATCH_SIZE", "2"]
    proc = run_cli(args, env_extra={"CLIPPROMPT_CPU_HALF": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "needs a GPU" not in proc.stdout
    losses = [float(v) for v in re.findall(r"\bloss \S+ \(([-\w.+]+)\)", proc.stdout)]
    assert losses and all(math.isfinite(v) for v in losses), proc.stdout[-2000:]
    assert glob.glob(os.path.join(out, "prompt_learner", "model.pth.tar-*"))
    # results.json holds this run's evaluation: Dassl's count over the 4 base classes' 3 test images each
    record = json.loads((out / "results.json").read_text())
    total, correct = (int(re.search(rf"^\* {count}: (\d+)$", proc.stdout, re.M).group(1)) for count in ("total", "correct"))
    assert record["num_samples"] == total == 4 * 3 and record["epoch"] == 1
    assert record["accuracy"] == pytest.approx(100 * correct / total)
    # without the override the same command falls back to fp32 and says so; the half-precision run
    # predicts as the fp32 one does, to one test image
    proc = run_cli([*args[:args.index("--output-dir") + 1], str(tmp_path / "fp32"), *args[args.index("--output-dir") + 2:]])
    assert proc.returncode == 0 and f"PREC {prec} needs a GPU; running in fp32" in proc.stdout
    fp32 = json.loads((tmp_path / "fp32" / "results.json").read_text())
    assert fp32["num_samples"] == total and abs(record["accuracy"] - fp32["accuracy"]) <= 100 / total + 1e-9, (record, fp32)


def test_gpu_smoke_script_says_so_without_cuda():
    proc = run_cli(["bash", "scripts/gpu_smoke.sh"], env_extra={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: scripts/gpu_smoke.sh needs a CUDA device, "
                                                "and torch.cuda.is_available() is False here"]


# ----- deep prompts (MaPLe, PromptSRC): prompts in CLIP's dtype, cast inside the towers ---------
def build_deep(kind, clip_model):
    from clipprompt.methods.maple import DeepPromptCLIP
    from clipprompt.methods.promptsrc import PromptSRCCLIP

    torch.manual_seed(0)
    if kind == "MaPLe":
        return DeepPromptCLIP(clip_model, NAMES, n_ctx=2, text_depth=3, coupled=True)
    if kind == "DualPromptMI-promptsrc":  # over PromptSRC, every DualPromptMI term on
        config = DualPromptMIConfig(prompt_learner="promptsrc", deep_text_depth=3, deep_vision_n_ctx=2, deep_vision_depth=2,
                                    src_gpa_mean=1.5, vision_mi_weight=1.0, infer_weight=0.5)
        model = DualPromptMICLIP(clip_model, NAMES, [TEMPLATE], config, teacher_templates=[TEMPLATE, "itap of a {}."],
                                 max_epoch=2)
        model.refresh_prototypes(TRAIN_SET)
        return model
    return PromptSRCCLIP(clip_model, NAMES, [TEMPLATE, "itap of a {}."], gpa=(2, 1.5, 1.0), n_ctx=4, text_depth=3,
                         vision_n_ctx=2, vision_depth=2)


TRAIN_SET = [(images(4, seed=1), torch.tensor([0, 1, 2, 3]))]


def after_epoch(epoch):
    """What the trainer hands ``end_epoch`` (0-based ``epoch``)."""
    return SimpleNamespace(epoch=epoch, batches=lambda: TRAIN_SET, autocast=contextlib.nullcontext,
                           sync_statistics=lambda: None)


def deep_loss(model, x, y):
    return model.loss(x, y)[:2]  # every model's training loss (MaPLe: plain cross-entropy)


@pytest.mark.parametrize("prec", ["fp16", "amp"])
@pytest.mark.parametrize("kind", ["MaPLe", "PromptSRC", "DualPromptMI-promptsrc"])
def test_deep_prompt_train_step_in_fp16_and_amp(tiny_clip3_path, kind, prec):
    clip_model = load_clip("ViT-B/16", tiny_clip3_path, precision="fp16" if prec == "fp16" else "fp32")
    model = build_deep(kind, clip_model)
    params = dict(model.prompt_learner.named_parameters())
    dtype = torch.float16 if prec == "fp16" else torch.float32
    assert all(p.dtype == dtype for p in params.values())
    x, y = images(4, seed=2), torch.tensor([0, 1, 2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "amp"):
        loss, logits = deep_loss(model, x, y)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and torch.isfinite(logits).all()
    before = {k: p.detach().clone() for k, p in params.items()}
    loss.backward()
    for key, param in params.items():
        assert param.grad.dtype == dtype and torch.isfinite(param.grad).all() and param.grad.abs().max() > 0, key
    torch.optim.SGD(params.values(), lr=0.1).step()
    assert all(not torch.equal(params[k].detach(), before[k]) for k in params)
    if kind != "MaPLe":  # the aggregate sums in fp32 and gives the prompts back in their dtype
        model.end_epoch(after_epoch(0))
        assert model.end_epoch(after_epoch(1)) and model.aggregate.sum_0.dtype == torch.float32
        assert all(p.dtype == dtype and torch.isfinite(p).all() for p in params.values())
