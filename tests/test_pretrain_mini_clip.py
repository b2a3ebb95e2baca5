"""benchmarks/pretrain_mini_clip.py and benchmarks/mini_clip/: --quick runs load with OpenAI's loader, are deterministic, never overwrite."""

import io
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from benchmarks import fashion_colours as fc
from benchmarks import fashion_mnist as fm
from benchmarks import pretrain_mini_clip
from helpers import write_synthetic_idx_root
from benchmarks.mini_clip import training
from benchmarks.mini_clip.captions import CaptionSampler, ColourCaptionSampler
from benchmarks.mini_clip.recipe import BENCHMARK_RECIPES, QUICK_OVERRIDES, Recipe
from clipprompt.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = [sys.executable, "-m", "benchmarks.pretrain_mini_clip"]  # run from the repository root (cwd=REPO)


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    # --quick needs 16 train images per class and 8 downstream test images per class (40% of 20)
    return write_synthetic_idx_root(str(tmp_path_factory.mktemp("idx")), train_per_class=20, test_per_class=20)


def _quick(out, idx_root, *extra):
    return pretrain_mini_clip.main(["--out", str(out), "--data-root", idx_root, "--quick", "--no-progress", *extra])


@pytest.fixture(scope="module")
def quick_run(idx_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mini.pt"
    report = _quick(out, idx_root)
    return out, report


def test_check_existing_accepts_the_same_recipe_and_refuses_another(quick_run, capsys):
    out, _ = quick_run
    assert pretrain_mini_clip.main(["--out", str(out), "--quick", "--check-existing"]) is None
    with pytest.raises(UserError, match=r"was made with another recipe: benchmark 'fashion10' \(wanted 'fashion_colours'\)"):
        pretrain_mini_clip.main(["--out", str(out), "--quick", "--benchmark", "fashion_colours", "--check-existing"])
    with pytest.raises(UserError, match=r"steps \d+ \(wanted 1200\)"):  # the full recipe, not --quick
        pretrain_mini_clip.main(["--out", str(out), "--check-existing"])


def test_check_existing_without_a_report_warns_and_accepts(tmp_path, capsys):
    out = tmp_path / "copied.pt"
    out.write_bytes(b"not read")
    assert pretrain_mini_clip.main(["--out", str(out), "--check-existing"]) is None
    assert "cannot be checked" in capsys.readouterr().err
    with pytest.raises(UserError, match="no such checkpoint"):
        pretrain_mini_clip.main(["--out", str(tmp_path / "absent.pt"), "--check-existing"])


def test_quick_checkpoint_loads_with_openai_build_model(quick_run):
    from clip.model import build_model

    out, report = quick_run
    state_dict = torch.load(out, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float32 for v in state_dict.values() if v.is_floating_point())
    model = build_model(dict(state_dict)).float()
    assert model.visual.input_resolution == report["recipe"]["image_resolution"] == 32
    assert model.context_length == 77 and model.vocab_size == 49408
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state_dict[key], rtol=0, atol=1e-3)  # fp16 round trip in build_model


def test_quick_checkpoint_works_with_clip_tokenize_and_project_loader(quick_run):
    import clip

    from clipprompt.clip.loader import load_clip

    out, _ = quick_run
    model = load_clip("ViT-B/16", str(out))  # a local path wins over the name
    with torch.no_grad():
        text = model.encode_text(clip.tokenize(["a photo of a sneaker.", "a photo of a bag."]))
        image = model.encode_image(torch.zeros(2, 3, 32, 32))
    assert text.shape == image.shape == (2, 64)


def test_quick_report_and_sidecar(quick_run):
    out, report = quick_run
    with open(os.path.splitext(str(out))[0] + ".json") as f:
        sidecar = json.load(f)
    assert sidecar["recipe"] == report["recipe"]
    for kind in ("zero_shot", "16_shot_class_mean"):
        assert set(sidecar[kind]) == {"base", "new", "all"}
        assert all(0 <= value <= 100 for value in sidecar[kind].values())
    assert sidecar["num_test_images"] == 10 * 8


def test_same_seed_gives_identical_weights(quick_run, idx_root, tmp_path):
    out, _ = quick_run
    again = tmp_path / "again.pt"
    _quick(again, idx_root)
    first = torch.load(out, weights_only=True)
    second = torch.load(again, weights_only=True)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_other_seed_gives_other_weights(quick_run, idx_root, tmp_path):
    out, _ = quick_run
    other = tmp_path / "seed1.pt"
    _quick(other, idx_root, "--seed", "1")
    first = torch.load(out, weights_only=True)
    second = torch.load(other, weights_only=True)
    assert not torch.equal(first["visual.proj"], second["visual.proj"])


def test_training_changes_the_weights(quick_run, idx_root, tmp_path):
    out, _ = quick_run
    untrained = tmp_path / "untrained.pt"
    _quick(untrained, idx_root, "--steps", "0")
    trained = torch.load(out, weights_only=True)
    initial = torch.load(untrained, weights_only=True)
    assert not torch.equal(trained["text_projection"], initial["text_projection"])


def test_refuses_to_overwrite_without_flag(quick_run, idx_root):
    out, _ = quick_run
    before = open(out, "rb").read()
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        _quick(out, idx_root, "--seed", "1")
    assert open(out, "rb").read() == before
    _quick(out, idx_root, "--seed", "1", "--overwrite")
    assert open(out, "rb").read() != before


def test_cli_reports_a_user_error_in_one_line(quick_run, idx_root):
    out, _ = quick_run
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([*COMMAND, "--out", str(out), "--data-root", idx_root, "--quick"],
                            capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {out} already exists")
    assert "Traceback" not in result.stderr


PROGRESS_LINE = re.compile(r"^pretraining: epoch (\d+)/(\d+), step (\d+)/10 \((\d+)%\), \d+ s elapsed, ETA \d+ s, loss [\d.]+$")


def test_a_pretraining_prints_a_progress_line_with_an_eta_at_each_tenth(idx_root, tmp_path):
    # a fresh interpreter with warnings on (pytest.ini ignores clip's pkg_resources one): the first
    # thing the benchmark prints is its progress, not that warning
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run([sys.executable, "-W", "default", *COMMAND[1:], "--out", str(tmp_path / "mini.pt"),
                             "--data-root", idx_root, "--quick", "--steps", "10"],
                            capture_output=True, text=True, env=dict(env, OMP_NUM_THREADS="1"), timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "pkg_resources" not in result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("pretraining:")]
    assert result.stdout.splitlines()[0] == lines[0]
    found = [PROGRESS_LINE.match(line) for line in lines]
    assert all(found), lines
    assert [int(m.group(3)) for m in found] == list(range(1, 11))  # 10 steps: one line each
    assert [int(m.group(4)) for m in found] == list(range(10, 101, 10))
    assert [m.group(1) + "/" + m.group(2) for m in found][::5] == ["1/2", "2/2"]  # 160 images, batches of 32


def test_progress_lines_change_no_weight(idx_root, capsys):
    recipe = pretrain_mini_clip.recipe_from_args(pretrain_mini_clip.parse_args(["--out", "x.pt", "--quick", "--steps", "4"]))
    roots = fm.idx_search_roots(idx_root)
    silent = training.pretrain(recipe, roots, progress=False).state_dict()
    assert "pretraining:" not in capsys.readouterr().out
    shown = training.pretrain(recipe, roots, progress=True).state_dict()
    assert capsys.readouterr().out.count("pretraining:") == 4
    for key in silent:
        assert torch.equal(silent[key], shown[key]), key


def test_a_long_pretraining_prints_ten_lines():
    out = io.StringIO()
    lines = training.ProgressLines(1200, 46, file=out)
    for step in range(1200):
        lines(step, lambda: 1.0)
    printed = out.getvalue().splitlines()
    assert len(printed) == 10 and "epoch 3/27, step 120/1200 (10%)" in printed[0]
    assert "epoch 27/27, step 1200/1200 (100%)" in printed[-1] and "ETA 0 s" in printed[-1]


@pytest.mark.parametrize("callers_switch", [False, True])
@pytest.mark.parametrize("fails", [False, True])
def test_pretraining_runs_deterministic_and_gives_the_caller_its_switch_back(idx_root, monkeypatch, callers_switch, fails):
    recipe = Recipe(**{**Recipe().__dict__, **QUICK_OVERRIDES, "steps": 1})
    seen = []
    real = training._pretrain

    def spy(*args):
        seen.append(torch.are_deterministic_algorithms_enabled())
        if fails:
            raise RuntimeError("interrupted")
        return real(*args)

    monkeypatch.setattr(training, "_pretrain", spy)
    torch.use_deterministic_algorithms(callers_switch)
    try:
        if fails:
            with pytest.raises(RuntimeError, match="interrupted"):
                training.pretrain(recipe, idx_root, progress=False)
        else:
            assert isinstance(training.pretrain(recipe, idx_root, progress=False), torch.nn.Module)
        after = torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)  # torch's default, whatever happened
    assert seen == [True] and after is callers_switch


def test_widths_must_be_multiples_of_64(idx_root, tmp_path):
    with pytest.raises(UserError, match="multiple of 64"):
        _quick(tmp_path / "bad.pt", idx_root, "--vision-width", "96")


def test_trimmed_text_encoding_equals_the_full_77_tokens():
    import clip

    recipe = Recipe(**{**Recipe().__dict__, **QUICK_OVERRIDES})
    torch.manual_seed(0)
    model = training.build_clip(recipe).eval()
    tokens = clip.tokenize(["a photo of a t-shirt.", "look at this ankle boot on a plain background!"])
    trimmed = training.trim_tokens(tokens)
    assert trimmed.shape[1] < 77
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(trimmed), model.encode_text(tokens), rtol=1e-5, atol=1e-5)


def _captions(recipe, labels, seed=0):
    sampler = CaptionSampler(recipe)
    tokens = sampler.sample(labels, torch.Generator().manual_seed(seed))
    return [sampler.captions[(sampler.tokens == row).all(-1).nonzero()[0, 0]] for row in tokens]


def _only(kind):
    fractions = dict(generic_prob=0.0, wrong_word_prob=0.0, lookalike_prob=0.0, canonical_prob=0.0)
    if kind != "synonym":
        fractions[kind] = 1.0
    return Recipe(**fractions)


def _filled_word(caption):
    """The class or generic word a caption was filled with."""
    words = fm.CLASS_WORDS
    for template in fm.CAPTION_TEMPLATES:
        head, tail = template.split("{}")
        if caption.startswith(head) and caption.endswith(tail):
            word = caption[len(head):len(caption) - len(tail)]
            if word in fm.GENERIC_WORDS or any(word in ws for ws in words):
                return word
    raise AssertionError(f"caption {caption!r} fits no template")


def test_caption_kinds_use_the_documented_words():
    labels = torch.arange(10).repeat(6)
    words = fm.CLASS_WORDS
    lookalike = fm.LOOKALIKE

    for kind, allowed in (
        ("canonical_prob", lambda y: {words[y][0]}),
        ("lookalike_prob", lambda y: {words[lookalike[y]][0]}),
        ("generic_prob", lambda y: set(fm.GENERIC_WORDS)),
        ("synonym", lambda y: set(words[y][1:])),
        ("wrong_word_prob", lambda y: {w for ws in words for w in ws} - set(words[y])),
    ):
        for label, caption in zip(labels.tolist(), _captions(_only(kind), labels)):
            assert _filled_word(caption) in allowed(label), (kind, label, caption)


def test_caption_mix_follows_the_fractions():
    recipe = Recipe(generic_prob=0.2, wrong_word_prob=0.0, lookalike_prob=0.3, canonical_prob=0.5)
    labels = torch.full((2000,), 4)  # coat; its look-alike is the pullover
    captions = _captions(recipe, labels)
    filled = [_filled_word(caption) for caption in captions]
    share = {word: filled.count(word) / len(filled) for word in ("coat", "pullover")}
    assert abs(share["coat"] - 0.5) < 0.05 and abs(share["pullover"] - 0.3) < 0.05


def test_caption_fractions_above_one_are_refused():
    with pytest.raises(UserError, match="add up to at most 1"):
        CaptionSampler(Recipe(canonical_prob=0.8, lookalike_prob=0.3))


def test_other_class_words_name_no_class_and_every_item_has_another_lookalike():
    # a synonym caption that used another class's name would be a mislabelled one
    assert not {w for ws in fm.OTHER_CLASS_WORDS for w in ws} & set(fm.CLASSNAMES)
    assert all(len(ws) >= 2 for ws in fm.OTHER_CLASS_WORDS)
    lookalike = fm.LOOKALIKE
    assert len(lookalike) == 10 and all(other != label for label, other in enumerate(lookalike))


def test_recipe_resolution_matches_the_dataset_config():
    import yaml

    with open(os.path.join(REPO, "configs", "datasets", "fashion_mnist.yaml")) as f:
        size = yaml.safe_load(f)["INPUT"]["SIZE"]
    resolution = Recipe().image_resolution
    assert str(size).replace(" ", "") == f"({resolution},{resolution})"


def test_outputs_get_ordinary_file_permissions(quick_run):
    out, _ = quick_run
    umask = os.umask(0)
    os.umask(umask)
    for path in (str(out), os.path.splitext(str(out))[0] + ".json"):
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    assert not [name for name in os.listdir(os.path.dirname(str(out))) if name.startswith(".tmp_")]


# ------------------------------------------------------- fashion_colours benchmark

def test_colour_benchmark_quick_run_reports_thirty_classes_per_half(idx_root, tmp_path):
    report = _quick(tmp_path / "colours.pt", idx_root, "--benchmark", "fashion_colours")
    assert report["recipe"]["benchmark"] == "fashion_colours"
    assert report["num_classes"] == {"base": 30, "new": 30, "all": 60}
    downstream = fc.load_downstream(idx_root)
    assert report["num_test_images"] == len(downstream.split["test"])  # fewer than 8 per class here
    for kind in ("zero_shot", "16_shot_class_mean"):
        assert all(0 <= value <= 100 for value in report[kind].values())
    # the benchmark's own recipe applies, --quick shrinks it and flags still win
    recipe = pretrain_mini_clip.recipe_from_args(pretrain_mini_clip.parse_args(
        ["--out", "x.pt", "--benchmark", "fashion_colours", "--steps", "7"]))
    assert recipe.steps == 7
    assert recipe.colour_canonical_prob == BENCHMARK_RECIPES["fashion_colours"]["colour_canonical_prob"]


def test_unknown_benchmark_is_a_one_line_error(idx_root, tmp_path):
    with pytest.raises(UserError, match="--benchmark 'mnist': choose one of fashion10, fashion_colours"):
        _quick(tmp_path / "x.pt", idx_root, "--benchmark", "mnist")


def _colour_phrases(recipe, items, colours, seed=0):
    sampler = ColourCaptionSampler(recipe)
    tokens = sampler.sample(items, torch.Generator().manual_seed(seed), colours)
    captions = [sampler.captions[(sampler.tokens == row).all(-1).nonzero()[0, 0]] for row in tokens]
    phrases = []
    for caption in captions:
        for template in fc.CAPTION_TEMPLATES:
            head, tail = template.split("{}")
            if caption.startswith(head) and caption.endswith(tail):
                phrases.append(caption[len(head):len(caption) - len(tail)])
                break
        else:
            raise AssertionError(f"caption {caption!r} fits no template")
    return phrases


def _colour_word(phrase):
    """The colour word at the start of a phrase ("" when omitted)."""
    words = sorted({w for ws in fc.COLOUR_WORDS for w in ws}, key=len, reverse=True)
    return next((w for w in words if phrase.startswith(w + " ")), "")


@pytest.mark.parametrize("names", [1, 2])
def test_colour_caption_kinds_use_the_documented_words(names):
    """Look-alike captions use a neighbour's class-name words, canonical ones the colour's own (the
    first ``colour_names`` words of each colour), synonyms the rest."""
    colour_words = fc.COLOUR_WORDS
    items = torch.arange(10).repeat(12)
    colours = torch.arange(12).repeat_interleave(10)
    n = len(colour_words)
    for kind, allowed in (
        ("colour_omit_prob", lambda c: {""}),
        ("colour_lookalike_prob", lambda c: set(colour_words[(c - 1) % n][:names] + colour_words[(c + 1) % n][:names])),
        ("colour_canonical_prob", lambda c: set(colour_words[c][:names])),
        ("synonym", lambda c: set(colour_words[c][names:])),
    ):
        fractions = dict(colour_omit_prob=0.0, colour_lookalike_prob=0.0, colour_canonical_prob=0.0, generic_prob=0.0,
                         wrong_word_prob=0.0, lookalike_prob=0.0, canonical_prob=1.0)  # item word: the class name
        if kind != "synonym":
            fractions[kind] = 1.0
        recipe = Recipe(colour_names=names, **fractions)
        seen = set()
        for item, colour, phrase in zip(items.tolist(), colours.tolist(), _colour_phrases(recipe, items, colours)):
            word = _colour_word(phrase)
            assert word in allowed(colour), (kind, colour, phrase)
            assert phrase[len(word):].strip() == fm.CLASSNAMES[item]
            seen.add(word)
        if kind == "colour_canonical_prob" and names == 2:
            assert seen == {w for ws in colour_words for w in ws[:2]}  # both halves' words are drawn


def test_colour_names_out_of_range_is_a_user_error():
    with pytest.raises(UserError, match="--colour-names must be between 1 and 2"):
        ColourCaptionSampler(Recipe(colour_names=3))


def test_other_colour_words_name_no_palette_colour_and_lookalikes_are_hue_neighbours():
    assert not {w for ws in fc.OTHER_COLOUR_WORDS for w in ws} & set(fc.COLOUR_NAMES)
    # the recipe's two class-name words per colour leave a word for the synonym captions
    assert BENCHMARK_RECIPES["fashion_colours"]["colour_names"] == 2 < min(len(ws) for ws in fc.COLOUR_WORDS)
    hues = [hue for _, hue in fc.PALETTE]
    for colour, neighbours in enumerate(fc.LOOKALIKE_COLOURS):
        assert sorted((hues[other] - hues[colour]) % 360 for other in neighbours) == [30, 330]


def test_caption_token_rows_train_exactly_like_the_full_table():
    """Training only the caption tokens' rows gives the weights a dense token table gives."""
    recipe = Recipe(**{**Recipe().__dict__, **QUICK_OVERRIDES})
    sampler = CaptionSampler(recipe)
    images = torch.randn(4, 8, 3, 32, 32)
    tokens = [sampler.sample(torch.arange(8) % 10, torch.Generator().manual_seed(i)) for i in range(4)]
    results = []
    for compact in (False, True):
        torch.manual_seed(0)
        model = training.build_clip(recipe)
        table = model.token_embedding
        if compact:
            model.token_embedding = training.CaptionTokenRows(table, sampler.tokens)
        optimizer = training.make_optimizer(model, recipe)
        for step in range(4):
            loss = training.clip_loss(model, images[step], tokens[step])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if compact:
            model.token_embedding.put_back(table)
            model.token_embedding = table
        results.append(model.state_dict())
    dense, compact = results
    assert dense.keys() == compact.keys()
    for key in dense:
        assert torch.equal(dense[key], compact[key]), key
