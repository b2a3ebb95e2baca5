"""Deep vision-language prompts (clipprompt/prompts/deep.py): the short text pass stays exact with
deep prompts, depth 1 without vision prompts is CoOp, vision prompts enter the image tower only
for one pass, MaPLe's coupling and its learnt init prefix; OpenAI's and open_clip's towers."""

import json

import pytest
import torch
import torch.nn.functional as F

from clipprompt.runtime import checkpoint as ckpt
from clipprompt.prompts.deep import DeepPrompt, build_prompt_learner
from clipprompt.clip.towers import prompted_vision
from clipprompt.errors import UserError
from clipprompt.methods.coop import CoOpCLIP
from clipprompt.methods.maple import DeepPromptCLIP
from clipprompt.prompts.hand import encode_hand_crafted
from clipprompt.prompts.soft import tokenize
from clipprompt.clip.towers import TextEncoder
from clipprompt.clip.backbone import as_backbone
from conftest import TINY_RESOLUTION, build_tiny_clip

NAMES = ["dog", "sea lion", "golden retriever", "car"]
LONG_NAME = " ".join(["hypothetical"] * 28)  # its EOT sits far beyond the other prompts'
TOL = 1e-5


def images(n, seed=0):
    return torch.randn(n, 3, TINY_RESOLUTION, TINY_RESOLUTION, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def openai_clip3():
    """Three blocks per tower, so that prompts of depth 2 and 3 have blocks to enter."""
    return build_tiny_clip(seed=1, layers=3).requires_grad_(False)  # frozen, as load_clip leaves it


@pytest.fixture(scope="module")
def open_clip3(tmp_path_factory):
    open_clip = pytest.importorskip("open_clip", reason="open_clip_torch is not installed")
    config = {"embed_dim": 64, "quick_gelu": False,
              "vision_cfg": {"image_size": TINY_RESOLUTION, "layers": 3, "width": 64, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 3}}
    path = tmp_path_factory.mktemp("open_clip_deep") / "toy-oc-deep.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(str(path))
    torch.manual_seed(2)
    return open_clip.create_model("toy-oc-deep").eval().requires_grad_(False)


def clip_of(request, kind):
    return request.getfixturevalue({"openai": "openai_clip3", "open_clip": "open_clip3"}[kind])


def randomise(module, seed=0, std=0.5):
    """Every trainable tensor of a prompt learner away from its (small) initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * std)


def hidden_sizes(blocks, seq_first):
    """(sequence length, rows) of every input that reaches ``blocks[0]`` (forward and recomputation)."""
    seen = []

    def record(module, args):
        shape = args[0].shape
        seen.append((shape[0], shape[1]) if seq_first else (shape[1], shape[0]))

    blocks[0].register_forward_pre_hook(record)
    return seen


def reference_vision(visual, image, first, deeper, seq_first):
    """The prompted ViT written out by hand: prompts appended after the positional embedding,
    the last n tokens replaced before blocks 1..J-1, the class token's feature."""
    n = first.shape[0]
    x = visual.conv1(image)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    x = torch.cat([x, first.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
    x = visual.ln_pre(x)
    for index, block in enumerate(visual.transformer.resblocks):
        if 1 <= index <= len(deeper):
            x = torch.cat([x[:, :-n], deeper[index - 1].unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
        x = block(x.permute(1, 0, 2)).permute(1, 0, 2) if seq_first else block(x)
    x = visual.ln_post(x[:, 0])
    return F.normalize((x @ visual.proj).float(), dim=-1)


def no_hooks_left(visual):
    modules = [visual, visual.ln_pre, visual.transformer, *visual.transformer.resblocks]
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in modules)


# ----- 1. the short text pass stays exact -------------------------------------------------
@pytest.mark.parametrize("kind", ["openai", "open_clip"])
@pytest.mark.parametrize("learner", ["ivlp", "maple"])
def test_deep_prompts_short_pass_equals_full_pass_and_chunks(request, kind, learner):
    """Features, logits and the gradients of every prompt parameter (maple: the coupling too)
    agree between the short pass, all 77 positions, and chunks under checkpointing."""
    clip_model = clip_of(request, kind)
    maple = learner == "maple"
    names = NAMES + [LONG_NAME]
    model = DeepPromptCLIP(clip_model, names, n_ctx=2 if maple else 4, ctx_init="a photo of a", text_depth=3,
                           vision_n_ctx=2, vision_depth=3, coupled=maple)
    randomise(model.prompt_learner)
    params = dict(model.prompt_learner.named_parameters())
    assert ("coupling.2.weight" in params) == maple and ("vision_deep" in params) == (not maple)
    seq_first = model.text_encoder.seq_first
    seen = hidden_sizes(model.text_encoder.transformer.resblocks, seq_first)
    x, y = images(3), torch.tensor([0, 4, 2])
    weights = torch.linspace(-1, 1, 64)
    runs = {}
    for name, full, chunk in (("short", False, 0), ("full", True, 0), ("chunked", False, 2)):
        model.text_encoder.full_context, model.text_encoder.chunk_size = full, chunk
        model.zero_grad()
        text = model.compute_text_features()
        logits = model.logits(model.encode_image(x), text)
        (F.cross_entropy(logits, y) + (text * weights).sum()).backward()
        runs[name] = {"text": text.detach(), "logits": logits.detach(),
                      **{k: p.grad.clone() for k, p in params.items()}}
    eot = model.prompt_learner.tokenized_prompts.argmax(-1)
    short = int(eot.max()) + 1
    assert short < 77
    # short: all 5 prompts; full: 77 positions; chunked: 2 + 2 + 1 forward, then each chunk recomputed
    assert seen[0] == (short, 5) and seen[1] == (77, 5)
    assert [n for _, n in seen[2:5]] == [2, 2, 1] and sorted(n for _, n in seen[5:]) == [1, 2, 2]
    for name in ("short", "chunked"):
        for key, value in runs["full"].items():
            diff = (runs[name][key] - value).abs().max().item()
            assert diff <= TOL, f"{name} {key}: {diff}"
    for key in params:
        assert runs["short"][key].abs().max() > 0, key  # every prompt parameter is trained
    # the deep prompts change the features (they are not a no-op)
    with torch.no_grad():
        learner_ = model.prompt_learner
        plain = F.normalize(model.text_encoder(learner_(), learner_.tokenized_prompts).float(), dim=-1)
    assert (plain - runs["short"]["text"]).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["openai", "open_clip"])
def test_deep_prompts_overwrite_positions_1_to_n_before_each_block(request, kind):
    """The context positions' hidden states after block i-1 are the same for every class (causal
    tower, context before every name). Deep prompts equal to them reproduce CoOp's features: the
    replaced positions are exactly 1..n and the replacement happens before block i."""
    clip_model = clip_of(request, kind)
    coop = CoOpCLIP(clip_model, NAMES, n_ctx=4)
    randomise(coop.prompt_learner, seed=4)
    seq_first = coop.text_encoder.seq_first
    outputs = []
    handles = [block.register_forward_hook(lambda m, inp, out: outputs.append(out.detach()))
               for block in coop.text_encoder.transformer.resblocks[:2]]
    with torch.no_grad():
        expected = coop.compute_text_features()
    for handle in handles:
        handle.remove()
    states = [out[1:5].permute(1, 0, 2) if seq_first else out[:, 1:5] for out in outputs]  # (C, n, width)
    for state in states:
        torch.testing.assert_close(state, state[:1].expand_as(state), rtol=0, atol=1e-6)

    deep = DeepPromptCLIP(clip_model, NAMES, n_ctx=4, ctx_init="", text_depth=3, vision_n_ctx=0)
    with torch.no_grad():
        deep.prompt_learner.ctx.copy_(coop.prompt_learner.ctx)
        deep.prompt_learner.text_deep.copy_(torch.stack([s[0] for s in states]))
        torch.testing.assert_close(deep.compute_text_features(), expected, rtol=0, atol=TOL)
        # one slot of layer 2 changed (not by a constant: LayerNorm would remove that): the features move
        deep.prompt_learner.text_deep[1, 0] += torch.linspace(-0.5, 0.5, 64)
        assert (deep.compute_text_features() - expected).abs().max() > 1e-3


def test_text_prompts_deeper_than_the_tower_are_refused(openai_clip3):
    with pytest.raises(UserError, match=r"text prompt depth must lie in 1\.\.3 .*got 4"):
        DeepPrompt(as_backbone(openai_clip3), NAMES, n_ctx=4, text_depth=4)
    encoder = TextEncoder(as_backbone(openai_clip3))
    learner = DeepPrompt(as_backbone(openai_clip3), NAMES, n_ctx=4, text_depth=1)
    with pytest.raises(UserError, match="4 layers of text prompts do not fit a text tower of 3 blocks"):
        encoder(learner(), learner.tokenized_prompts, torch.zeros(3, 4, 64))


# ----- 2. depth 1 without vision prompts is CoOp ------------------------------------------
def test_depth_one_without_vision_prompts_is_coop_exactly(openai_clip3):
    x, y = images(4, seed=2), torch.tensor([0, 1, 2, 3])
    coop = CoOpCLIP(openai_clip3, NAMES, n_ctx=4)
    deep = DeepPromptCLIP(openai_clip3, NAMES, n_ctx=4, ctx_init="", text_depth=1, vision_n_ctx=0)
    randomise(coop.prompt_learner, seed=1)
    # a CoOp checkpoint's state loads into depth-1 prompts (same name, same shape)
    missing = ckpt.load_matching_state(deep, coop.trainable_state_dict())
    assert torch.equal(deep.prompt_learner.ctx, coop.prompt_learner.ctx)
    assert [k for k in missing if k.startswith("prompt_learner.")] == ["prompt_learner.text_deep"]
    assert deep.prompt_learner.text_deep.numel() == 0
    assert deep.prompt_learner.vision_prompts() is None and deep.prompt_learner.deep_text_prompts() is None
    out = {}
    for name, model in (("coop", coop), ("deep", deep)):
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        out[name] = (logits.detach(), model.prompt_learner.ctx.grad.clone())
    assert torch.equal(out["deep"][0], out["coop"][0])
    assert torch.equal(out["deep"][1], out["coop"][1]) and out["coop"][1].abs().max() > 0
    assert not deep.encode_image(x).requires_grad  # the image tower stays frozen and graph-free
    with torch.no_grad(), deep.cached_text_features(), coop.cached_text_features():
        assert torch.equal(deep.predict(x)["main"], coop.predict(x)["main"])


# ----- 3. vision prompts --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["openai", "open_clip"])
def test_vision_prompts_enter_one_pass_and_train(request, kind):
    clip_model = clip_of(request, kind)
    model = DeepPromptCLIP(clip_model, NAMES, n_ctx=4, text_depth=2, vision_n_ctx=3, vision_depth=2)
    randomise(model.prompt_learner, seed=5)
    visual, learner = model.image_encoder, model.prompt_learner
    x, y = images(3, seed=1), torch.tensor([0, 1, 3])
    frozen = model.encode_image_frozen(x)
    assert not frozen.requires_grad
    with torch.no_grad():
        direct = F.normalize(clip_model.encode_image(x).float(), dim=-1)
    torch.testing.assert_close(frozen, direct, rtol=0, atol=1e-6)

    prompted = model.encode_image(x)
    assert prompted.requires_grad and (prompted - frozen).abs().max() > 1e-3
    with torch.no_grad():
        expected = reference_vision(visual, x, learner.vision_first, learner.vision_deep, model.seq_first)
    torch.testing.assert_close(prompted.detach(), expected, rtol=0, atol=TOL)
    F.cross_entropy(model.logits(prompted, model.compute_text_features()), y).backward()
    assert learner.vision_first.grad.abs().max() > 0 and learner.vision_deep.grad.abs().max() > 0
    assert all(p.grad is None for p in visual.parameters())
    # the hooks lived for that pass only: the plain tower again, bit for bit
    assert no_hooks_left(visual)
    assert torch.equal(model.encode_image_frozen(x), frozen)
    # ... also when the pass fails
    with pytest.raises(RuntimeError):
        model.encode_image(torch.zeros(1, 4, TINY_RESOLUTION, TINY_RESOLUTION))
    assert no_hooks_left(visual)


def test_vision_prompts_of_depth_one_stay_to_the_end(openai_clip3):
    """Depth 1: the prompts appended before ln_pre propagate through every block (no replacement)."""
    model = DeepPromptCLIP(openai_clip3, NAMES, n_ctx=4, text_depth=1, vision_n_ctx=2, vision_depth=1)
    randomise(model.prompt_learner, seed=6)
    learner, x = model.prompt_learner, images(2)
    assert learner.vision_deep.shape[0] == 0
    handles = []
    with torch.no_grad():
        with prompted_vision(model.image_encoder, learner.vision_first, learner.vision_deep, seq_first=True):
            handles = [m for m in model.image_encoder.transformer.resblocks if m._forward_pre_hooks]
            features = F.normalize(model.image_encoder(x).float(), dim=-1)
        expected = reference_vision(model.image_encoder, x, learner.vision_first, learner.vision_deep, True)
    assert handles == []
    torch.testing.assert_close(features, expected, rtol=0, atol=TOL)
    torch.testing.assert_close(model.encode_image(x).detach(), expected, rtol=0, atol=TOL)


def test_vision_prompts_under_bfloat16_autocast(openai_clip3):
    model = DeepPromptCLIP(openai_clip3, NAMES, n_ctx=4, text_depth=2, vision_n_ctx=2, vision_depth=3)
    x = images(2)
    with torch.no_grad():
        plain = model.encode_image(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cast = model.encode_image(x)
    assert cast.dtype == torch.float32 and (cast - plain).abs().max() < 0.05


def resnet_clip():
    from clip.model import CLIP

    torch.manual_seed(0)  # vision_layers as a tuple: OpenAI's ModifiedResNet image tower
    return CLIP(embed_dim=64, image_resolution=TINY_RESOLUTION, vision_layers=(1, 1, 1, 1), vision_width=64,
                vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=64,
                transformer_heads=1, transformer_layers=2).float().eval().requires_grad_(False)


def test_resnet_image_tower_takes_no_vision_prompts():
    clip_model = resnet_clip()
    assert type(clip_model.visual).__name__ == "ModifiedResNet"
    for coupled in (False, True):
        with pytest.raises(UserError) as info:
            DeepPromptCLIP(clip_model, NAMES, n_ctx=2, text_depth=2, vision_n_ctx=2, vision_depth=1, coupled=coupled)
        message = str(info.value)
        assert "ViT" in message and "ModifiedResNet" in message and "\n" not in message
    # deep text prompts alone work on any tower
    model = DeepPromptCLIP(clip_model, NAMES, n_ctx=2, text_depth=2, vision_n_ctx=0)
    with torch.no_grad():
        assert torch.isfinite(model(images(2))).all()


def test_vision_prompts_deeper_than_the_tower_name_the_depth(openai_clip3):
    with pytest.raises(UserError, match=r"vision prompt depth must lie in 1\.\.3 .*got 5"):
        DeepPrompt(as_backbone(openai_clip3), NAMES, n_ctx=4, text_depth=1, vision_n_ctx=2, vision_depth=5)
    with pytest.raises(UserError, match="got -1"):
        DeepPrompt(as_backbone(openai_clip3), NAMES, n_ctx=4, vision_n_ctx=-1)
    # MaPLe uses the text depth for both towers: a shallower image tower refuses it
    from clip.model import CLIP

    torch.manual_seed(0)
    lopsided = CLIP(embed_dim=64, image_resolution=TINY_RESOLUTION, vision_layers=2, vision_width=64,
                    vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=64,
                    transformer_heads=1, transformer_layers=3).float().eval().requires_grad_(False)
    with pytest.raises(UserError, match=r"text prompt depth must lie in 1\.\.2 \(the image tower's blocks\), got 3"):
        DeepPrompt(as_backbone(lopsided), NAMES, n_ctx=2, text_depth=3, coupled=True)
    learner = DeepPrompt(as_backbone(lopsided), NAMES, n_ctx=2, text_depth=2, coupled=True)
    first, deeper = learner.vision_prompts()
    with pytest.raises(UserError, match="3 layers of vision prompts do not fit an image tower of 2 blocks"):
        with prompted_vision(lopsided.visual, first, torch.cat([deeper, deeper]), seq_first=True):
            pass
    assert no_hooks_left(lopsided.visual)


def test_build_prompt_learner_maps_the_names(openai_clip3):
    assert type(build_prompt_learner("coop", as_backbone(openai_clip3), NAMES)).__name__ == "SoftPrompt"
    ivlp = build_prompt_learner("ivlp", as_backbone(openai_clip3), NAMES, text_depth=2, vision_n_ctx=2, vision_depth=3)
    maple = build_prompt_learner("maple", as_backbone(openai_clip3), NAMES, n_ctx=2, text_depth=3)
    assert not ivlp.coupled and ivlp.vision_depth == 3 and maple.coupled and maple.vision_depth == 3
    with pytest.raises(UserError, match="KEY must be one of coop, ivlp, maple, got 'deep'"):
        build_prompt_learner("deep", as_backbone(openai_clip3), NAMES, key="KEY")
    with pytest.raises(UserError, match="shared context"):
        build_prompt_learner("ivlp", as_backbone(openai_clip3), NAMES, csc=True, text_depth=2, vision_depth=2)
    with pytest.raises(UserError, match="CLASS_TOKEN_POSITION end"):
        build_prompt_learner("maple", as_backbone(openai_clip3), NAMES, n_ctx=2, class_token_position="front", text_depth=2)


# ----- 4. MaPLe's coupling ----------------------------------------------------------------
def test_maple_coupling_maps_text_prompts_and_trains_them_through_the_image(openai_clip3):
    model = DeepPromptCLIP(openai_clip3, NAMES, n_ctx=2, text_depth=3, coupled=True)
    learner = model.prompt_learner
    randomise(learner, seed=8, std=0.2)
    assert set(model.trainable_state_dict()) == {"prompt_learner.ctx", "prompt_learner.text_deep"} | {
        f"prompt_learner.coupling.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    first, deeper = learner.vision_prompts()
    assert first.shape == (2, 64) and deeper.shape == (2, 2, 64)
    assert torch.equal(first, learner.coupling[0](learner.ctx))
    for i in (1, 2):
        assert torch.equal(deeper[i - 1], learner.coupling[i](learner.text_deep[i - 1]))
    x = images(3)
    with torch.no_grad():
        expected = reference_vision(model.image_encoder, x, first, deeper, True)
    features = model.encode_image(x)
    torch.testing.assert_close(features.detach(), expected, rtol=0, atol=TOL)
    # a loss on the image features alone reaches the text prompts of every layer, through the coupling
    (features * torch.linspace(-1, 1, 64)).sum().backward()
    assert learner.ctx.grad.abs().max() > 0
    assert all(learner.text_deep.grad[i].abs().max() > 0 for i in range(2))
    assert all(layer.weight.grad.abs().max() > 0 for layer in learner.coupling)
    # and the text loss alone leaves the coupling untouched
    model.zero_grad(set_to_none=True)
    model.compute_text_features().sum().backward()
    assert all(layer.weight.grad is None for layer in learner.coupling)
    assert learner.text_deep.grad.abs().max() > 0


# ----- 5. MaPLe's learnt init prefix ------------------------------------------------------
def test_maple_learns_the_first_n_ctx_tokens_of_ctx_init(openai_clip3):
    model = DeepPromptCLIP(openai_clip3, NAMES, n_ctx=2, ctx_init="a photo of a", text_depth=1, coupled=True)
    learner = model.prompt_learner
    tokens = tokenize([f"a photo of a {name}." for name in NAMES], as_backbone(openai_clip3))
    with torch.no_grad():
        embedded = openai_clip3.token_embedding(tokens)
        phrase = openai_clip3.token_embedding(tokenize(["a photo"], as_backbone(openai_clip3)))[0, 1:3]
    assert learner.n_ctx == 2 and torch.equal(learner.ctx, phrase)  # "a photo" is learnt ...
    assert torch.equal(learner.tokenized_prompts, tokens)  # ... "of a" stays fixed text
    assert torch.equal(learner(), embedded)
    with torch.no_grad():
        learner.ctx.add_(1.0)
        rows = learner()
    assert torch.equal(rows[:, 1:3], (phrase + 1.0).expand(len(NAMES), -1, -1))
    assert torch.equal(rows[:, :1], embedded[:, :1]) and torch.equal(rows[:, 3:], embedded[:, 3:])
    with torch.no_grad():
        learner.ctx.sub_(1.0)
        # depth 1, at its initialisation: the hand-crafted prompt itself
        torch.testing.assert_close(model.compute_text_features(),
                                   encode_hand_crafted(as_backbone(openai_clip3), NAMES, ["a photo of a {}."]), rtol=0, atol=TOL)
    with pytest.raises(UserError, match=r"N_CTX must lie in 1\.\.4 \(the tokens of CTX_INIT 'a photo of a'\), got 5"):
        DeepPromptCLIP(openai_clip3, NAMES, n_ctx=5, ctx_init="a photo of a", text_depth=1, coupled=True)
