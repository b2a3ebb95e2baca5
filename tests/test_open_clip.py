"""open_clip backbones: toy open_clip models saved in open_clip's checkpoint formats and loaded as a
user's file, the exact short text pass on open_clip's batch-first towers, an OpenAI-format CLIP and
its open_clip twin giving the same logits and the same CoOp step, train.py through real Dassl for
every trainer, and one-line errors for what is not supported."""

import json
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

from clipprompt.clip.backbone import as_backbone, check_pixel_normalisation
from clipprompt.clip.loader import load_clip
from clipprompt.errors import UserError
from clipprompt.methods.coop import CoOpCLIP
from clipprompt.methods.zeroshot import ZeroShotCLIP
from conftest import TINY_RESOLUTION, build_tiny_clip, requires_dassl, run_cli

open_clip = pytest.importorskip("open_clip", reason='open_clip_torch is not installed (pip install -e ".[open_clip]")')

NAMES = ["dog", "sea lion", "golden retriever", "car"]
LONG_NAME = " ".join(["hypothetical"] * 28)  # its EOT sits far beyond the other prompts'
TOL = dict(rtol=0, atol=1e-5)


def toy_config(quick_gelu=False, layers=1, proj_bias=False, **text):
    """open_clip's classic CLIP at toy size (widths multiples of 64), images of the tests' INPUT.SIZE."""
    text_cfg = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": layers,
                "proj_bias": proj_bias, **text}
    return {"embed_dim": 64, "quick_gelu": quick_gelu,
            "vision_cfg": {"image_size": TINY_RESOLUTION, "layers": 1, "width": 64, "patch_size": 16},
            "text_cfg": text_cfg}


def write_config(folder, arch, config):
    path = folder / f"{arch}.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("open_clip_configs")
    return {
        "toy": write_config(folder, "toy-oc", toy_config(layers=2)),
        "linear": write_config(folder, "toy-oc-linear", toy_config(layers=2, proj_bias=True)),
        "quickgelu": write_config(folder, "toy-oc-quickgelu", toy_config(quick_gelu=True)),
        "wide": write_config(folder, "toy-oc-wide", dict(toy_config(), embed_dim=128)),
        "last": write_config(folder, "toy-oc-last", toy_config(pool_type="last")),
        "bidirectional": write_config(folder, "toy-oc-bidir", toy_config(no_causal_mask=True)),
        "hf": write_config(folder, "toy-oc-hf", dict(toy_config(), text_cfg={"hf_model_name": "roberta-base"})),
    }


def random_open_clip(config_file, seed=0):
    """Random weights, as a user's trained model would have its own."""
    open_clip.add_model_config(config_file)
    torch.manual_seed(seed)
    arch = config_file.rsplit("/", 1)[-1][:-len(".json")]
    return open_clip.create_model(arch).eval()


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----- checkpoint formats -----------------------------------------------------
@pytest.mark.parametrize("fmt", ["pt", "bin", "safetensors", "wrapped", "ddp"])
def test_open_clip_checkpoint_formats_load_through_backbone_path(tmp_path, configs, fmt):
    model = random_open_clip(configs["toy"], seed=3)
    state = model.state_dict()
    path = tmp_path / f"model.{'safetensors' if fmt == 'safetensors' else 'bin' if fmt == 'bin' else 'pt'}"
    if fmt == "safetensors":
        safetensors = pytest.importorskip("safetensors.torch")
        safetensors.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == "wrapped":  # a training checkpoint: the weights under "state_dict"
        torch.save({"epoch": 3, "state_dict": state}, path)
    elif fmt == "ddp":  # saved from DistributedDataParallel
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    loaded = load_clip(f"open_clip:{configs['toy']}", str(path))
    assert same_weights(loaded, model)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    backbone = as_backbone(loaded)
    assert (backbone.kind, backbone.image_size, backbone.embed_dim, backbone.width) == \
        ("open_clip", (TINY_RESOLUTION, TINY_RESOLUTION), 64, 64)


def test_registered_arch_name_and_tokenizer_match_open_clip(tmp_path, configs):
    model = random_open_clip(configs["toy"])
    path = tmp_path / "toy.pt"
    torch.save(model.state_dict(), path)
    loaded = load_clip("open_clip:toy-oc", str(path))  # registered above: a name like ViT-B-16
    assert same_weights(loaded, model)
    texts = ["a photo of a dog.", "X X X X sea lion.", LONG_NAME]
    assert torch.equal(as_backbone(loaded).tokenize(texts), open_clip.get_tokenizer("toy-oc")(texts))


def test_fp16_precision_builds_open_clip_half_layers(tmp_path, configs):
    path = tmp_path / "toy.pt"
    torch.save(random_open_clip(configs["toy"]).state_dict(), path)
    model = load_clip(f"open_clip:{configs['toy']}", str(path), precision="fp16")
    assert as_backbone(model).dtype == torch.float16
    assert model.visual.conv1.weight.dtype == torch.float16


# ----- the short text pass ------------------------------------------------------
def features_and_grad(model, full):
    model.text_encoder.full_context = full
    model.zero_grad()
    features = model.compute_text_features()
    (features * torch.linspace(-1, 1, features.shape[1])).sum().backward()
    return features.detach(), model.prompt_learner.ctx.grad.clone()


@pytest.mark.parametrize("kind", ["toy", "linear"])
@pytest.mark.parametrize("position", ["end", "front"])
def test_short_pass_equals_full_pass_on_open_clip(configs, kind, position):
    """Two causal layers, so a wrongly cut mask would leak through the second; 'linear' has a Linear projection."""
    clip_model = random_open_clip(configs[kind], seed=1)
    assert isinstance(clip_model.text_projection, torch.nn.Linear) == (kind == "linear")
    model = CoOpCLIP(clip_model, NAMES, n_ctx=4, class_token_position=position)
    with torch.no_grad():
        model.prompt_learner.ctx.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    seen = []
    model.text_encoder.transformer.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[1]))
    short, short_grad = features_and_grad(model, full=False)
    full, full_grad = features_and_grad(model, full=True)
    assert seen[0] < 20 and seen[1] == 77  # batch-first: dim 1 is the sequence
    torch.testing.assert_close(short, full, **TOL)
    torch.testing.assert_close(short_grad, full_grad, **TOL)
    assert short_grad.abs().max() > 0

    long_model = CoOpCLIP(clip_model, NAMES + [LONG_NAME], n_ctx=4, class_token_position=position)
    long_model.prompt_learner.ctx.data.copy_(model.prompt_learner.ctx.data)
    torch.testing.assert_close(features_and_grad(long_model, False)[0], features_and_grad(long_model, True)[0], **TOL)


def test_short_pass_matches_open_clip_encode_text(configs):
    """Hand-crafted prompts through the short pass equal open_clip's own encode_text (all 77 positions)."""
    clip_model = random_open_clip(configs["linear"], seed=2)
    templates = ["a photo of a {}."]
    ours = ZeroShotCLIP(clip_model, NAMES, templates).class_text_features
    tokens = open_clip.get_tokenizer("toy-oc-linear")([f"a photo of a {n}." for n in NAMES])
    with torch.no_grad():
        reference = F.normalize(clip_model.encode_text(tokens), dim=-1)
    torch.testing.assert_close(ours, reference, **TOL)


# ----- the same weights in both formats -------------------------------------------
def test_openai_clip_and_its_open_clip_twin_agree(tmp_path, configs):
    """A tiny OpenAI-format CLIP loads strictly into open_clip's -quickgelu toy (same key names);
    zero-shot logits and one CoOp SGD step agree to 1e-5 (float32; the attention kernels
    differ only in layout: sequence-first against batch-first)."""
    path = tmp_path / "openai_tiny.pt"
    torch.save(build_tiny_clip(seed=4).state_dict(), path)
    openai_model = load_clip("ViT-B/16", str(path))
    twin = load_clip(f"open_clip:{configs['quickgelu']}", str(path))
    image = torch.randn(6, 3, TINY_RESOLUTION, TINY_RESOLUTION, generator=torch.Generator().manual_seed(0))
    label = torch.tensor([0, 1, 2, 3, 0, 1])

    zs = [ZeroShotCLIP(m, NAMES, ["a photo of a {}."]) for m in (openai_model, twin)]
    with torch.no_grad():
        torch.testing.assert_close(zs[0](image), zs[1](image), **TOL)

    steps = []
    for clip_model in (openai_model, twin):
        torch.manual_seed(7)  # the same context initialisation
        model = CoOpCLIP(clip_model, NAMES, n_ctx=4)
        optim = torch.optim.SGD([model.prompt_learner.ctx], lr=0.5)
        loss = F.cross_entropy(model(image), label)
        loss.backward()
        grad = model.prompt_learner.ctx.grad.clone()
        optim.step()
        steps.append((loss.detach(), grad, model.prompt_learner.ctx.detach().clone()))
    (loss_a, grad_a, ctx_a), (loss_b, grad_b, ctx_b) = steps
    torch.testing.assert_close(loss_a, loss_b, **TOL)
    torch.testing.assert_close(grad_a, grad_b, **TOL)
    torch.testing.assert_close(ctx_a, ctx_b, **TOL)
    assert grad_a.abs().max() > 1e-4


# ----- one-line errors ----------------------------------------------------------
def test_unknown_arch_is_one_line():
    with pytest.raises(UserError, match=r"unknown open_clip architecture 'ViT-Q-99'.*MODEL.BACKBONE.NAME"):
        load_clip("open_clip:ViT-Q-99")


def test_missing_model_config_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="open_clip model config not found"):
        load_clip(f"open_clip:{tmp_path / 'nope.json'}")


def test_checkpoint_of_another_arch_names_key_and_path(tmp_path, configs):
    path = tmp_path / "wide.pt"
    torch.save(random_open_clip(configs["wide"]).state_dict(), path)
    with pytest.raises(UserError) as info:
        load_clip(f"open_clip:{configs['toy']}", str(path))
    message = str(info.value)
    assert str(path) in message and "MODEL.BACKBONE.PATH" in message and "has shape" in message
    assert "\n" not in message


def test_openai_archive_into_non_quickgelu_arch_is_refused(tmp_path, configs):
    path = tmp_path / "openai_tiny.pt"  # OpenAI ships CLIP as TorchScript archives
    text = torch.zeros(1, 77, dtype=torch.long)
    text[0, :3] = torch.tensor([49406, 320, 49407])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow
        traced = torch.jit.trace(build_tiny_clip(), (torch.zeros(1, 3, TINY_RESOLUTION, TINY_RESOLUTION), text),
                                 check_trace=False)
    traced.save(str(path))
    with pytest.raises(UserError, match=r"QuickGELU; set MODEL.BACKBONE.NAME open_clip:toy-oc-quickgelu"):
        load_clip(f"open_clip:{configs['toy']}", str(path))
    assert same_weights(load_clip(f"open_clip:{configs['quickgelu']}", str(path)),
                        load_clip(f"open_clip:{configs['quickgelu']}", _plain_copy(tmp_path, build_tiny_clip())))


def _plain_copy(tmp_path, model):
    path = tmp_path / "plain.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def test_pretrained_tag_offline_says_to_set_backbone_path(monkeypatch):
    from open_clip import pretrained

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(pretrained, "download_pretrained", offline)
    with pytest.raises(UserError, match=r"cannot download the open_clip weights ViT-B-32 laion2b_s34b_b79k .*"
                                        r"set MODEL.BACKBONE.PATH"):
        load_clip("open_clip:ViT-B-32", pretrained="laion2b_s34b_b79k")


def test_unknown_tag_and_quickgelu_mismatch_are_one_line():
    with pytest.raises(UserError, match=r"MODEL.BACKBONE.PRETRAINED 'nonsense' is not an open_clip tag of ViT-B-32"):
        load_clip("open_clip:ViT-B-32", pretrained="nonsense")
    with pytest.raises(UserError, match=r"trained with QuickGELU; set MODEL.BACKBONE.NAME open_clip:ViT-B-32-quickgelu"):
        load_clip("open_clip:ViT-B-32", pretrained="openai")
    with pytest.raises(UserError, match=r"MODEL.BACKBONE.PRETRAINED .* is for open_clip backbones"):
        load_clip("ViT-B/16", pretrained="openai")


def test_missing_open_clip_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import open_clip now raises ImportError
    with pytest.raises(UserError, match=r'needs open_clip_torch.*pip install -e "\.\[open_clip\]"'):
        load_clip("open_clip:ViT-B-16")


@pytest.mark.parametrize("kind, fragment", [
    ("last", "text_pool_type 'last' is not supported, only 'argmax'"),
    ("bidirectional", "a bidirectional text tower (no causal mask) is not supported"),
    ("hf", "HuggingFace text encoder 'roberta-base' is not supported"),
])
def test_unsupported_text_towers_stop_with_one_line(configs, kind, fragment):
    with pytest.raises(UserError) as info:
        load_clip(f"open_clip:{configs[kind]}")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_siglip_is_refused_before_anything_is_built():
    with pytest.raises(UserError, match=r"open_clip:ViT-B-16-SigLIP: the tokenizer .* is not supported"):
        load_clip("open_clip:ViT-B-16-SigLIP")


def test_pixel_normalisation_must_follow_the_model(configs):
    backbone = as_backbone(random_open_clip(configs["toy"]))
    mean, std = list(backbone.pixel_mean), list(backbone.pixel_std)
    check_pixel_normalisation(backbone, mean, std)  # the model's own: fine
    with pytest.raises(UserError, match=r"INPUT.PIXEL_MEAN \[0.485, 0.456, 0.406\] differs .*set INPUT.PIXEL_MEAN \[0.481"):
        check_pixel_normalisation(backbone, [0.485, 0.456, 0.406], std)
    with pytest.raises(UserError, match=r"set INPUT.PIXEL_STD \[0.268"):
        check_pixel_normalisation(backbone, mean, [0.5, 0.5, 0.5])
    check_pixel_normalisation(as_backbone(build_tiny_clip()), [0.5] * 3, [0.5] * 3)  # OpenAI's carry none


# ----- train.py through real Dassl ----------------------------------------------
# Four context tokens keep the runs short (the trainers' defaults are 16).
SHORT_CONTEXT = {"CoOp": "TRAINER.COOP.N_CTX", "CoCoOp": "TRAINER.COCOOP.N_CTX", "KgCoOp": "TRAINER.KGCOOP.N_CTX",
                 "ProGrad": "TRAINER.PROGRAD.N_CTX"}


@requires_dassl
@pytest.mark.parametrize("trainer", ["ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "DualPromptMI"])
def test_train_py_base_to_new_with_open_clip_backbone(tmp_path, configs, pets_root, tiny_cfg_file, trainer):
    from helpers import TINY, ok, results, train_args

    weights = _plain_copy(tmp_path, random_open_clip(configs["toy"], seed=5))
    backbone = ["MODEL.BACKBONE.NAME", f"open_clip:{configs['toy']}", "OPTIM.MAX_EPOCH", "1"]
    extra = [*TINY, *backbone]
    if trainer in SHORT_CONTEXT:
        extra += [SHORT_CONTEXT[trainer], "4"]
    base = str(tmp_path / "base")
    proc = ok(run_cli(train_args(pets_root, base, weights, tiny_cfg_file, trainer=trainer, extra=extra)))
    assert f"Loading CLIP (open_clip:{configs['toy']}, {weights})" in proc.stdout
    assert results(base)["trainer"] == trainer and results(base)["num_samples"] == 4 * 3
    new = str(tmp_path / "new")
    # ZeroshotCLIP learns nothing: its new half is a fresh evaluation, not a reload
    reload = [] if trainer == "ZeroshotCLIP" else ["--model-dir", base, "--eval-only"]
    ok(run_cli(train_args(pets_root, new, weights, tiny_cfg_file, trainer=trainer, subsample="new",
                          extra=[*reload, *extra])))
    assert results(new)["trainer"] == trainer and results(new)["num_samples"] == 3 * 3


@requires_dassl
def test_train_py_pixel_mean_mismatch_is_one_line(tmp_path, configs, pets_root, tiny_cfg_file):
    from helpers import TINY, train_args, user_error

    weights = _plain_copy(tmp_path, random_open_clip(configs["toy"]))
    extra = [*TINY, "MODEL.BACKBONE.NAME", f"open_clip:{configs['toy']}", "INPUT.PIXEL_MEAN", "[0.5, 0.5, 0.5]"]
    user_error(run_cli(train_args(pets_root, str(tmp_path / "out"), weights, tiny_cfg_file, trainer="CoOp",
                                  extra=extra)), "INPUT.PIXEL_MEAN", "set INPUT.PIXEL_MEAN [0.481")


def test_an_open_clip_name_without_weights_is_refused_not_left_random(configs):
    # A prompt learner on a random CLIP would train without complaint to meaningless numbers.
    with pytest.raises(UserError, match=r"has no weights: set MODEL\.BACKBONE\.PATH .* or MODEL\.BACKBONE\.PRETRAINED"):
        load_clip(f"open_clip:{configs['toy']}")
    model = load_clip(f"open_clip:{configs['toy']}", random_weights=True)  # tools/bench.py: timing only
    assert not any(p.requires_grad for p in model.parameters())
