"""The one text encoder: short passes equal the 77-position pass, chunked passes equal one pass."""

import itertools
import json
import types

import pytest
import torch
import torch.nn.functional as F

from clipprompt.errors import UserError
from clipprompt.methods.cocoop import CoCoOpCLIP
from clipprompt.methods.coop import CoOpCLIP
from clipprompt.prompts.soft import class_name_length, tokenize
from clipprompt.prompts.hand import encode_hand_crafted
from clipprompt.clip.towers import TextEncoder, check_chunk_size
from clipprompt.clip.backbone import as_backbone
from conftest import TINY_RESOLUTION, build_tiny_clip, requires_dassl, run_cli

NAMES = ["dog", "sea lion", "golden retriever", "car"]
# 56 BPE tokens: with SOS, 4 context tokens, "." and EOT its EOT sits at position 62 of 77.
LONG_NAME = " ".join(["hypothetical"] * 28)
TOL = dict(rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def clip2():
    """Two text layers, so that masked positions would leak through a second block if the cut were wrong."""
    return build_tiny_clip(seed=1, layers=2)


def images(n, seed=0):
    return torch.randn(n, 3, TINY_RESOLUTION, TINY_RESOLUTION, generator=torch.Generator().manual_seed(seed))


def lengths_seen(encoder):
    """Sequence lengths that reach CLIP's transformer (it is sequence-first)."""
    seen = []
    encoder.transformer.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape[:2])))
    return seen


def features_and_grad(model, full, chunk=0):
    model.text_encoder.full_context = full
    model.text_encoder.chunk_size = chunk
    model.zero_grad()
    features = model.compute_text_features()
    (features * torch.linspace(-1, 1, features.shape[1])).sum().backward()
    return features.detach(), model.prompt_learner.ctx.grad.clone()


def randomise_ctx(model, seed=0):
    with torch.no_grad():
        ctx = model.prompt_learner.ctx
        ctx.copy_(torch.randn(ctx.shape, generator=torch.Generator().manual_seed(seed)) * 0.5)


@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("csc", [False, True])
def test_short_pass_equals_full_pass_features_and_context_gradient(clip2, position, csc):
    names = NAMES + [LONG_NAME]
    model = CoOpCLIP(clip2, names, n_ctx=4, csc=csc, class_token_position=position)
    randomise_ctx(model)
    seen = lengths_seen(model.text_encoder)
    short, short_grad = features_and_grad(model, full=False)
    full, full_grad = features_and_grad(model, full=True)
    eot = model.prompt_learner.tokenized_prompts.argmax(-1)
    assert seen[0] == (int(eot.max()) + 1, len(names)) and seen[-1] == (77, len(names))
    assert int(eot.max()) == 1 + 4 + class_name_length(LONG_NAME) + 1  # the long name reaches position 62
    torch.testing.assert_close(short, full, **TOL)
    torch.testing.assert_close(short_grad, full_grad, **TOL)
    assert short_grad.abs().sum() > 0


def test_short_pass_length_follows_the_longest_prompt(clip2):
    model = CoOpCLIP(clip2, NAMES, n_ctx=4)
    seen = lengths_seen(model.text_encoder)
    model.compute_text_features()
    longest = max(class_name_length(n) for n in NAMES)
    assert seen == [(1 + 4 + longest + 2, len(NAMES))]  # SOS, context, name, ".", EOT


def test_cocoop_per_image_prompts_short_equals_full(clip2):
    torch.manual_seed(0)
    model = CoCoOpCLIP(clip2, NAMES + [LONG_NAME], n_ctx=4, ctx_init="a photo of a")
    with torch.no_grad():
        for p in model.meta_net.parameters():
            p.normal_(0, 0.5)
    x, labels = images(3), torch.tensor([0, 4, 2])
    seen = lengths_seen(model.text_encoder)
    out = {}
    for full in (False, True):
        model.text_encoder.full_context = full
        model.zero_grad()
        logits = model(x)
        F.cross_entropy(logits, labels).backward()
        out[full] = (logits.detach(), model.prompt_learner.ctx.grad.clone(), model.meta_net[0].weight.grad.clone())
    assert seen[0][1] == 3 * 5 and seen[0][0] < 77 and seen[1][0] == 77
    for short, full in zip(out[False], out[True]):
        torch.testing.assert_close(short, full, **TOL)


def test_hand_crafted_features_equal_clip_encode_text_on_77_tokens(clip2):
    names = NAMES + [LONG_NAME]
    templates = ["a photo of a {}.", "itap of a {}."]
    with torch.no_grad():
        expected = []
        for template in templates:
            tokens = tokenize([template.format(n) for n in names], as_backbone(clip2))
            assert tokens.shape[1] == 77
            expected.append(F.normalize(clip2.encode_text(tokens), dim=-1))
        expected = F.normalize(torch.stack(expected).mean(0), dim=-1)
    torch.testing.assert_close(encode_hand_crafted(as_backbone(clip2), names, templates), expected, **TOL)


@pytest.mark.parametrize("csc", [False, True])
def test_chunked_pass_equals_one_pass_with_gradients(clip2, csc):
    names = [f"class {i}" for i in range(7)] + [LONG_NAME]
    model = CoOpCLIP(clip2, names, n_ctx=4, csc=csc)
    randomise_ctx(model, seed=3)
    seen = lengths_seen(model.text_encoder)
    one, one_grad = features_and_grad(model, full=False)
    chunked, chunked_grad = features_and_grad(model, full=False, chunk=3)
    # forward 3 + 3 + 2 prompts, then backward recomputes each chunk once
    assert [n for _, n in seen[:4]] == [8, 3, 3, 2] and sorted(n for _, n in seen[4:]) == [2, 3, 3]
    torch.testing.assert_close(chunked, one, **TOL)
    torch.testing.assert_close(chunked_grad, one_grad, **TOL)


def test_chunked_cocoop_gradients_equal_one_pass(clip2):
    torch.manual_seed(0)
    model = CoCoOpCLIP(clip2, NAMES, n_ctx=4)
    x, labels = images(3, seed=1), torch.tensor([1, 0, 3])
    grads = {}
    for chunk in (0, 5):  # 12 per-image prompts in chunks of 5, crossing image boundaries
        model.text_encoder.chunk_size = chunk
        model.zero_grad()
        F.cross_entropy(model(x), labels).backward()
        grads[chunk] = [p.grad.clone() for p in (model.prompt_learner.ctx, *model.meta_net.parameters())]
    for a, b in zip(grads[0], grads[5]):
        torch.testing.assert_close(b, a, **TOL)


def saved_activation_bytes(model):
    """Bytes autograd keeps for backward during one text pass (what grows with the class count)."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.compute_text_features()
    return total[0]


def test_chunking_bounds_the_memory_kept_for_backward(clip2):
    kept = {}
    for n_cls in (16, 64):
        model = CoOpCLIP(clip2, [f"class {i}" for i in range(n_cls)], n_ctx=4)
        for chunk in (0, 8):
            model.text_encoder.chunk_size = chunk
            kept[n_cls, chunk] = saved_activation_bytes(model)
    # one pass: activations grow with the class count; chunked: only the chunk inputs do, a small fraction
    assert kept[64, 0] > 3.5 * kept[16, 0]
    assert kept[64, 8] < kept[64, 0] / 5


def test_chunk_size_must_be_a_non_negative_int(clip2):
    encoder = TextEncoder(as_backbone(clip2))
    for bad in (-1, 2.5, "4", True):
        with pytest.raises(UserError, match="MODEL.TEXT_CHUNK_SIZE"):
            encoder.chunk_size = bad
    assert check_chunk_size(0) == 0 and check_chunk_size(16) == 16


@requires_dassl
def test_train_py_chunk_size_key(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    base = ["train.py", "--root", pets_root, "--seed", "1", "--trainer", "CoOp",
            "--dataset-config-file", "configs/datasets/oxford_pets.yaml", "--config-file", tiny_cfg_file,
            "MODEL.BACKBONE.PATH", tiny_clip_path, "DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1",
            "TRAINER.COOP.N_CTX", "4", "DATALOADER.TEST.BATCH_SIZE", "16"]
    proc = run_cli([*base[:1], "--output-dir", str(tmp_path / "bad"), *base[1:], "MODEL.TEXT_CHUNK_SIZE", "-1"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "MODEL.TEXT_CHUNK_SIZE" in last and "Traceback" not in proc.stderr
    proc = run_cli([*base[:1], "--output-dir", str(tmp_path / "ok"), *base[1:], "MODEL.TEXT_CHUNK_SIZE", "3"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "ok" / "results.json").is_file()


def test_bench_memory_curve_prints_rows_and_plot(tmp_path):
    plot, table = tmp_path / "memory.png", tmp_path / "memory.json"
    # two measured points (each in its own process) and one extrapolated one-pass point
    proc = run_cli(["-m", "tools.bench", "--arch", "tiny", "--trainers", "CoOp", "--memory-curve", "3", "6", "12",
                    "--chunks", "0", "--one-pass-limit", "6", "--steps", "0", "--name-tokens", "5",
                    "--plot", str(plot), "--json", str(table)], timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(table.read_text())["rows"]
    assert [(r["classes"], bool(r.get("extrapolated"))) for r in rows] == [(3, False), (6, False), (12, True)]
    assert all(r["text_positions"] == 1 + 4 + 5 + 2 for r in rows)
    assert all(r["peak_mb"] > 0 and r["fp16_estimate_mb"] > 0 for r in rows)
    slope = (rows[1]["train_peak_mb"] - rows[0]["train_peak_mb"]) / 3
    assert rows[2]["train_peak_mb"] == pytest.approx(rows[1]["train_peak_mb"] + 6 * slope)
    assert "12" in proc.stdout and "extrapolated linearly" in proc.stdout
    assert plot.stat().st_size > 1000 and plot.read_bytes()[:4] == b"\x89PNG"


DEEP_TRAINERS = ("MaPLe", "IVLP", "PromptSRC", "DualPromptMI-ivlp", "DualPromptMI-maple", "DualPromptMI-promptsrc")


@pytest.mark.parametrize("trainer", DEEP_TRAINERS)
def test_bench_deep_trainers_step_at_their_settings_with_clamped_depth(trainer, monkeypatch):
    from tools import benchlib

    # a CPU clock that advances 1, 2, 3, ... seconds from one reading to the next: the times are known
    monkeypatch.setattr(benchlib, "time", types.SimpleNamespace(process_time=lambda: next(readings)))
    rows = []
    for full in (True, False):
        readings = itertools.accumulate(itertools.count(1), initial=0.0)  # 0, 1, 3, 6, 10, 15, ...
        rows.append(benchlib.measure(trainer, "tiny", 3, 2, 1, "cpu", full_context=full, evaluate=not full))
    for row in rows:
        # readings 0, 1 time the warm-up step (dropped with --steps 1), 3, 6 the one timed step
        assert (row["steps"], row["step_s"], row["train_img_per_s"]) == (1, 3.0, 2 / 3.0)
        # the process's peak RSS, read after training and again at the end: it holds the weights, never goes down
        assert row["memory"] == "peak RSS" and row["weights_mb"] < row["train_peak_mb"] <= row["peak_mb"]
        # the tiny arch has 2 blocks per tower: depth 9 is clamped, and said so
        depths = [depth for _, _, depth in benchlib.build_model(trainer, benchlib.build_clip("tiny", "cpu"), ["a"])[1].prompt_depths()]
        assert depths and set(depths) == {2} and "text depth 9 -> 2" in row["note"]
    # evaluation, when asked: readings 10, 15 time 2 batches (max(steps, 2)) of 2 images
    assert rows[0]["eval_img_per_s"] is None and rows[1]["eval_img_per_s"] == 2 * 2 / 5.0
    maple = trainer.endswith("MaPLe") or trainer.endswith("maple")
    width = benchlib.ARCHS["tiny"][5]
    # SOS, "a photo of a" (MaPLe: 2 learnt tokens, "of a" stays text), "class <i>" (2 tokens), ".", EOT
    assert rows[0]["text_positions"] == 1 + 4 + 2 + 1 + 1
    # the published prompts: MaPLe 2 tokens in 2 layers + one Linear(width, width) per layer;
    # IVLP / PromptSRC 4 + 4 tokens in 2 layers per tower
    prompts = 2 * 2 * width + 2 * (width * width + width) if maple else 2 * (2 * 4 * width)
    if trainer.startswith("DualPromptMI"):
        assert rows[0]["trainable_params"] > prompts  # its critics too
    else:
        assert rows[0]["trainable_params"] == prompts


def test_bench_speed_table_prints_step_ratios(tmp_path):
    table = tmp_path / "speed.json"
    proc = run_cli(["-m", "tools.bench", "--arch", "tiny", "--classes", "3", "--batch", "2", "--steps", "0", "--no-eval",
                    "--compare-full", "--trainers", "IVLP", "PromptSRC", "--json", str(table)], timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(table.read_text())["rows"]
    assert [(r["trainer"], r["full_context"]) for r in rows] == [
        ("IVLP", True), ("IVLP", False), ("PromptSRC", True), ("PromptSRC", False)]
    src = {r["full_context"]: r for r in rows if r["trainer"] == "PromptSRC"}
    ivlp = {r["full_context"]: r for r in rows if r["trainer"] == "IVLP"}
    for full in (True, False):
        assert src[full]["step_ratio"]["IVLP"] == pytest.approx(src[full]["step_s"] / ivlp[full]["step_s"])
    line = next(line for line in proc.stdout.splitlines() if line.startswith("PromptSRC / IVLP"))
    assert f"{src[False]['step_ratio']['IVLP']:.3f}x" in line and f"{src[True]['step_ratio']['IVLP']:.3f}x" in line
    assert "note: PromptSRC: prompt text depth 9 -> 2, vision depth 9 -> 2" in proc.stdout
    assert "DualPromptMI / CoOp" not in proc.stdout  # only pairs whose two trainers were measured
