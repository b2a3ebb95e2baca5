"""``python -m tools.import_checkpoint``: checkpoints in the official code's formats, turned into ours.

The official-format files here are made from the one name map (clipprompt/runtime/official.py), laid out
as each official trainer saves them (prompt learner alone or the whole model, frozen CLIP included;
class-dependent buffers; Dassl's pickled optimiser and scheduler objects). The run of the official code
itself is in tests/test_import_checkpoint_official.py.
"""

import os

import pytest
import torch
from conftest import build_tiny_clip, requires_dassl, run_cli
from helpers import ok, results, user_error

from clipprompt.clip.loader import load_clip
from clipprompt.errors import UserError
from clipprompt.methods import BuildContext, get_method
from clipprompt.prompts.templates import expand_templates
from clipprompt.runtime import checkpoint as ckpt
from clipprompt.runtime import official

CLASSES = ["abyssinian", "beagle", "boxer", "chihuahua"]
# Our options per trainer on the 3-block tiny CLIP, and the same as train.py's KEY VALUE pairs.
OPTIONS = {
    "CoOp": ({"n_ctx": 4, "ctx_init": ""}, ["TRAINER.COOP.N_CTX", "4"]),
    "KgCoOp": ({"n_ctx": 4, "ctx_init": ""}, ["TRAINER.COOP.N_CTX", "4"]),
    "ProGrad": ({"n_ctx": 4, "ctx_init": ""}, ["TRAINER.COOP.N_CTX", "4"]),
    "CoCoOp": ({"n_ctx": 4, "ctx_init": ""}, ["TRAINER.COCOOP.N_CTX", "4"]),
    "MaPLe": ({"prompt_depth": 3}, ["TRAINER.MAPLE.PROMPT_DEPTH", "3"]),
    "PromptSRC": ({"prompt_depth_text": 3, "n_ctx_vision": 2, "prompt_depth_vision": 2},
                  ["TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "3", "TRAINER.PROMPTSRC.N_CTX_VISION", "2",
                   "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2"]),
}


@pytest.fixture(scope="module")
def clip3(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip3") / "clip3.pt"
    torch.save(build_tiny_clip(layers=3).state_dict(), path)
    return str(path)


def build(trainer, clip_path, seed, classes=CLASSES):
    """Our model of ``trainer`` with every learnable tensor drawn from ``seed`` (not its initialisation)."""
    method = get_method(trainer)
    options = method.published_options(**OPTIONS[trainer][0])
    context = BuildContext(templates=lambda entries, role=None: expand_templates(entries, "a photo of a {}."),
                           max_epoch=2)
    model = method.build(load_clip("ViT-B/16", path=clip_path), classes, options, context)
    model.freeze_clip()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    return model.eval(), options


def official_state(trainer, model, clip_path):
    """The state dict the official ``trainer`` would save for ``model``'s parameters (its layout, its names)."""
    fmt = official.FORMATS[trainer]
    params = dict(model.named_parameters())
    state = {theirs: official.pick(params, where).detach().clone()
             for theirs, where in official.model_parameter_names(trainer, model).items()}
    width = state["prompt_learner.ctx"].shape[-1]
    state["prompt_learner.token_prefix"] = torch.randn(len(CLASSES), 1, width)
    state["prompt_learner.token_suffix"] = torch.randn(len(CLASSES), 72, width)
    if trainer == "KgCoOp":
        state["prompt_learner.bias_vectors"] = torch.randn(1, width)
        state["prompt_learner.meta_net.linear1.weight"] = torch.randn(width, width)
        state["prompt_learner.meta_net.linear1.bias"] = torch.randn(width)
    if fmt.whole_model:
        clip_state = torch.load(clip_path, weights_only=True)
        for key, value in clip_state.items():
            if key.startswith("visual."):
                state["image_encoder." + key[len("visual."):]] = value.half()  # the official fp16 CLIP
                if trainer == "PromptSRC":
                    state["prompt_learner.ZS_image_encoder." + key[len("visual."):]] = value.half()
            elif key == "logit_scale":
                state[key] = value.half()
            elif key.startswith(("transformer.", "positional_embedding", "ln_final.", "text_projection")):
                state["text_encoder." + key] = value.half()
        return state
    return {k[len("prompt_learner."):]: v for k, v in state.items()}


def save_official(folder, trainer, state, epoch=3):
    """As Dassl's save_checkpoint: the dict with the optimiser's state and the scheduler's, whose warm-up
    wrapper pickles the scheduler it wraps (an object torch's safe loader refuses)."""
    path = os.path.join(folder, official.FORMATS[trainer].model_name, f"model.pth.tar-{epoch}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    p = torch.nn.Parameter(torch.zeros(2))
    optim = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    scheduler = {"successor": torch.optim.lr_scheduler.CosineAnnealingLR(optim, 5), "warmup_epoch": 1}
    torch.save({"state_dict": state, "epoch": epoch, "optimizer": optim.state_dict(), "scheduler": scheduler,
                "val_result": None}, path)
    return path


@pytest.mark.parametrize("trainer", sorted(OPTIONS))
def test_converted_checkpoint_gives_the_logits_of_the_parameters_put_in(trainer, clip3, tmp_path):
    model, options = build(trainer, clip3, seed=1)
    path = save_official(str(tmp_path), trainer, official_state(trainer, model, clip3))
    payload = official.read_official(official.find_official(str(tmp_path), trainer))
    expected = official.expected_from_options(trainer, get_method(trainer).config_key, options)
    result = official.convert(trainer, payload["state_dict"], expected, source=path)
    assert payload["epoch"] == 3
    assert "token_prefix" in " ".join(result.dropped_class_dependent)
    assert bool(result.frozen_clip) == official.FORMATS[trainer].whole_model
    assert bool(result.unused) == (trainer == "KgCoOp")

    fresh, _ = build(trainer, clip3, seed=2)  # other prompts until the converted ones are loaded
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, before = model(images), fresh(images)
        assert not torch.allclose(before, want)
        ckpt.load_matching_state(fresh, result.state_dict, source=path)
        assert torch.equal(fresh(images), want)
    assert set(result.state_dict) == {n for n, p in fresh.named_parameters() if p.requires_grad}
    if official.FORMATS[trainer].whole_model:  # the frozen CLIP it holds is the one the model was built on
        compared, worst = official.compare_frozen_clip(result.frozen_clip, torch.load(clip3, weights_only=True), clip3)
        assert compared > 0 and 0 < worst < 1e-3  # the official file holds them in fp16


def test_promptsrc_without_its_frozen_copy_is_read_as_ivlp(clip3):
    model, options = build("PromptSRC", clip3, seed=1)
    state = {k: v for k, v in official_state("PromptSRC", model, clip3).items()
             if not k.startswith("prompt_learner.ZS_image_encoder.")}
    expected = official.expected_from_options("PromptSRC", "PROMPTSRC", options)
    assert official.convert("PromptSRC", state, expected).detected.startswith("IVLP")


@pytest.mark.parametrize("written_by, asked, words", [
    ("MaPLe", "PromptSRC", "keys of a MaPLe checkpoint (compound_prompts_text.*) in --official, but --trainer PromptSRC"),
    ("PromptSRC", "MaPLe", "keys of a PromptSRC checkpoint (VPT_shallow)"),
    ("CoCoOp", "CoOp", "keys of a CoCoOp checkpoint (meta_net.linear2.*)"),
    ("KgCoOp", "CoOp", "keys of a KgCoOp checkpoint (bias_vectors)"),
    ("CoOp", "KgCoOp", "keys of a CoOp checkpoint (ctx) in --official, but --trainer KgCoOp"),
])
def test_a_checkpoint_of_another_trainer_is_named(written_by, asked, words, clip3):
    model, _ = build(written_by, clip3, seed=1)
    state = official_state(written_by, model, clip3)
    if official.FORMATS[written_by].whole_model != official.FORMATS[asked].whole_model:
        # read as the asked trainer's layout would be: a prompt-learner file has no prefix
        state = ({f"prompt_learner.{k}": v for k, v in state.items()} if official.FORMATS[asked].whole_model
                 else {k[len("prompt_learner."):]: v for k, v in state.items() if k.startswith("prompt_learner.")})
    _, options = build(asked, clip3, seed=1)
    expected = official.expected_from_options(asked, get_method(asked).config_key, options)
    with pytest.raises(UserError) as info:
        official.convert(asked, state, expected)
    assert words in str(info.value)


def test_prograd_reads_the_coop_format(clip3):
    model, options = build("CoOp", clip3, seed=1)
    expected = official.expected_from_options("ProGrad", "COOP", options)
    result = official.convert("ProGrad", official_state("CoOp", model, clip3), expected)
    assert torch.equal(result.state_dict["prompt_learner.ctx"], model.prompt_learner.ctx)


def test_frozen_clip_of_another_model_is_refused(clip3, tmp_path):
    model, options = build("MaPLe", clip3, seed=1)
    state = official_state("MaPLe", model, clip3)
    result = official.convert("MaPLe", state, official.expected_from_options("MaPLe", "MAPLE", options))
    other = build_tiny_clip(seed=5, layers=3).state_dict()
    with pytest.raises(UserError, match="in --official differs from .* of --clip other.pt by .* of its scale: .*another CLIP"):
        official.compare_frozen_clip(result.frozen_clip, other, "other.pt")


# ----- the command line ------------------------------------------------------------------------

def convert_cli(trainer, official_path, out, *extra):
    return run_cli(["-m", "tools.import_checkpoint", "--trainer", trainer, "--official", official_path,
                    "--out", out, *extra], timeout=300)


@requires_dassl
def test_cli_converts_and_train_py_evaluates_it(clip3, pets_root, tiny_cfg_file, tmp_path):
    trainer = "PromptSRC"
    model, _ = build(trainer, clip3, seed=1, classes=["abyssinian", "beagle", "boxer", "chihuahua", "persian",
                                                       "pug", "samoyed"])
    save_official(str(tmp_path / "official"), trainer, official_state(trainer, model, clip3), epoch=7)
    out = str(tmp_path / "imported")
    opts = [*OPTIONS[trainer][1], "MODEL.BACKBONE.PATH", clip3]
    proc = ok(convert_cli(trainer, str(tmp_path / "official"), out, "--config-file", tiny_cfg_file,
                          "--root", pets_root, "--dataset-config-file", "configs/datasets/oxford_pets.yaml", *opts))
    text = proc.stdout
    assert "(epoch 7; VLPromptLearner, the whole model)" in text
    assert "image_encoder.transformer.resblocks.1.VPT_shallow (2, 64) -> prompt_learner.vision_deep[0]" in text
    assert "dropped (class-dependent" in text and "frozen CLIP: " in text and "the same as " + clip3 in text
    command = text.split("evaluate it with:\n", 1)[1].strip()
    assert command.startswith("python train.py ") and "--eval-only --model-dir " + out + " --load-epoch 7" in command
    args = command.split()[2:]
    assert args[args.index("--output-dir") + 1] == os.path.join(out, "eval")
    run = ok(run_cli(["train.py", *args]))
    assert "class names not recorded" in run.stdout
    record = results(os.path.join(out, "eval"))
    assert record["epoch"] == 7 and record["trainer"] == trainer

    again = convert_cli(trainer, str(tmp_path / "official"), out, *opts)
    user_error(again, "model.pth.tar-7 exists", "--overwrite")
    ok(convert_cli(trainer, str(tmp_path / "official"), out, "--overwrite", *opts))


@requires_dassl
def test_cli_without_a_clip_says_the_frozen_weights_were_not_compared(clip3, tmp_path):
    model, _ = build("MaPLe", clip3, seed=1)
    path = save_official(str(tmp_path), "MaPLe", official_state("MaPLe", model, clip3))
    proc = ok(convert_cli("MaPLe", path, str(tmp_path / "out"), *OPTIONS["MaPLe"][1]))
    assert "skipped and NOT compared" in proc.stdout


def refused(*args):
    """The message of the one-line error ``python -m tools.import_checkpoint ARGS`` ends with (run in this process:
    the exit status and the single line are checked through a subprocess in test_cli_missing_damaged_or_foreign_file_is_one_line)."""
    from tools import import_checkpoint

    with pytest.raises(UserError) as info:
        import_checkpoint.main(list(args))
    return str(info.value)


@requires_dassl
def test_bad_inputs_name_what_to_fix(clip3, tmp_path):
    model, _ = build("PromptSRC", clip3, seed=1)
    folder = str(tmp_path / "official")
    path = save_official(folder, "PromptSRC", official_state("PromptSRC", model, clip3))
    out = str(tmp_path / "out")
    opts = OPTIONS["PromptSRC"][1]

    def check(message, *fragments):
        for fragment in fragments:
            assert fragment in message, message

    def convert(trainer, official_path, *extra):
        return refused("--trainer", trainer, "--official", official_path, "--out", out, *extra)

    check(convert("PromptSRC", path, "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "3"),
          "image_encoder.VPT is (2, 64), our PromptSRC config expects 4 vision tokens",
          "set TRAINER.PROMPTSRC.N_CTX_VISION 2")
    check(convert("PromptSRC", path, *opts[:2], "TRAINER.PROMPTSRC.N_CTX_TEXT", "2", *opts[2:]),
          "ctx is (4, 64), our PromptSRC config expects (2, 64): set TRAINER.PROMPTSRC.N_CTX_TEXT 4")
    check(convert("PromptSRC", path, *opts[2:]), "text prompts in 3 layers", "set TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT 3")
    check(convert("MaPLe", folder), "holds VLPromptLearner/", "--trainer MaPLe saves into MultiModalPromptLearner/")
    check(convert("MaPLe", path), "keys of a PromptSRC checkpoint (VPT_shallow)", "--trainer MaPLe")
    check(convert("PromptSRC", folder, "--epoch", "9", *opts), "no checkpoint of epoch 9", "saved: 3")
    check(convert("VPT", path), "--trainer", "VPT")
    check(convert("PromptSRC", path, "--clip", clip3 + ".x", *opts), "--clip", "no such file")
    other = tmp_path / "other_clip.pt"
    torch.save(build_tiny_clip(seed=5, layers=3).state_dict(), other)
    check(convert("PromptSRC", path, "--clip", str(other), *opts), "another CLIP")
    assert not os.path.exists(out)  # nothing written by a refused conversion


@requires_dassl
def test_cli_missing_damaged_or_foreign_file_is_one_line(clip3, tmp_path):
    model, _ = build("CoOp", clip3, seed=1)
    path = save_official(str(tmp_path), "CoOp", official_state("CoOp", model, clip3))
    out = str(tmp_path / "out")
    user_error(convert_cli("CoOp", str(tmp_path / "missing.pth"), out), "--official", "missing.pth", "no such file")
    user_error(convert_cli("KgCoOp", path, out), "keys of a CoOp checkpoint (ctx) in --official", "--trainer KgCoOp")
    data = open(path, "rb").read()
    damaged = tmp_path / "truncated.pth.tar"
    damaged.write_bytes(data[: len(data) // 2])
    user_error(convert_cli("CoOp", str(damaged), out, *OPTIONS["CoOp"][1]), "truncated.pth.tar", "truncated")
    assert not os.path.exists(out)


def test_more_tokens_than_the_init_phrase_are_random_ones():
    # The published PromptSRC config learns 4 tokens from "a photo of a"; 16 need CTX_INIT '' (random init).
    options = get_method("PromptSRC").published_options()
    expected = official.expected_from_options("PromptSRC", "PROMPTSRC", options)
    state = {"prompt_learner.ctx": torch.zeros(16, 8), "image_encoder.VPT": torch.zeros(4, 8),
             **{f"text_encoder.transformer.resblocks.{i}.VPT_shallow": torch.zeros(16, 8) for i in range(1, 9)}}
    with pytest.raises(UserError) as info:
        official.convert("PromptSRC", state, expected)
    assert str(info.value) == ("ctx is (16, 8), our PromptSRC config expects (4, 8): "
                               "set TRAINER.PROMPTSRC.N_CTX_TEXT 16 and TRAINER.PROMPTSRC.CTX_INIT ''")
