"""A checkpoint the official code itself wrote, evaluated by ours: the official accuracy, exactly.

Per trainer: the official ``train.py``, unmodified, trains one epoch on a tiny dataset (7 classes, colour-coded
images) over a small random ViT CLIP (``python -m tools.parity_upstream train``: its shims make it run on the
CPU in fp32), saves its checkpoint and evaluates it on the test split. ``python -m tools.import_checkpoint``
converts the checkpoint, and the ``train.py --eval-only`` command it prints evaluates it with ours on the same
test split: the same number of correct images and the same macro F1.

Needs the official checkouts (the variables of tests/test_parity_forward.py); skipped, with the variable
to set as the reason, without them. Record: docs/experiments/2026-12-07-official-checkpoints.md.
"""

import os
import re
import shlex

import pytest
import torch
from conftest import TINY_TRAINER_CFG, requires_dassl, run_cli, write_pets_dataset
from helpers import ok, results

FORK = "Dassl.ProGrad.pytorch"
DEPTH = 3  # prompt layers of the deep trainers on the 4-block random CLIP


def _replace_once(text, old, new):
    assert text.count(old) == 1, old
    return text.replace(old, new)


# The suite's tiny config, for one epoch without randomness in the images (both sides see the same
# pixels) and without warm-up (one epoch would be all warm-up).
ONE_EPOCH = TINY_TRAINER_CFG
for _old, _new in (('TRANSFORMS: ["random_flip", "normalize"]', 'TRANSFORMS: ["normalize"]'),
                   ("LR: 0.002\n  MAX_EPOCH: 2\n", "LR: 0.02\n  MAX_EPOCH: 1\n"),
                   ('  WARMUP_EPOCH: 1\n  WARMUP_TYPE: "constant"\n  WARMUP_CONS_LR: 1e-5\n', "")):
    ONE_EPOCH = _replace_once(ONE_EPOCH, _old, _new)

# trainer: (variable of the checkout, its Dassl (the fork inside it, or None: CLIPPROMPT_UPSTREAM_DASSL),
#           the official config keys, ours). The same prompts on both sides, fp32.
INIT = "a photo of a"
CASES = {
    "CoOp": ("CLIPPROMPT_UPSTREAM_COOP", None,
             ["TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.CTX_INIT", INIT, "TRAINER.COOP.PREC", "fp32"],
             ["TRAINER.COOP.CTX_INIT", INIT, "TRAINER.COOP.PREC", "fp32"]),
    "PromptSRC": ("CLIPPROMPT_UPSTREAM_PROMPTSRC", None,
                  ["TRAINER.PROMPTSRC.N_CTX_TEXT", "4", "TRAINER.PROMPTSRC.N_CTX_VISION", "4",
                   "TRAINER.PROMPTSRC.CTX_INIT", INIT, "TRAINER.PROMPTSRC.PREC", "fp32",
                   "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", str(DEPTH), "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", str(DEPTH),
                   "TRAINER.PROMPTSRC.GPA_MEAN", "1", "TRAINER.PROMPTSRC.GPA_STD", "1"],
                  ["TRAINER.PROMPTSRC.N_CTX_TEXT", "4", "TRAINER.PROMPTSRC.N_CTX_VISION", "4",
                   "TRAINER.PROMPTSRC.PREC", "fp32", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", str(DEPTH),
                   "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", str(DEPTH)]),
    "MaPLe": ("CLIPPROMPT_UPSTREAM_MAPLE", None,
              ["TRAINER.MAPLE.N_CTX", "2", "TRAINER.MAPLE.CTX_INIT", INIT, "TRAINER.MAPLE.PREC", "fp32",
               "TRAINER.MAPLE.PROMPT_DEPTH", str(DEPTH)],
              ["TRAINER.MAPLE.PREC", "fp32", "TRAINER.MAPLE.PROMPT_DEPTH", str(DEPTH)]),
    # KgCoOp's CTX_INIT is a bool in its config: True means its hard-coded "a photo of a".
    "KgCoOp": ("CLIPPROMPT_UPSTREAM_KGCOOP", FORK,
               ["TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.CTX_INIT", "True", "TRAINER.COOP.PREC", "fp32",
                "TRAINER.COOP.W", "8.0", "TRAINER.COCOOP.PREC", "fp32"],
               ["TRAINER.KGCOOP.PREC", "fp32"]),
    # ProGrad's CTX_INIT True would start from its dataset template; False: 4 random tokens, as ours with "".
    "ProGrad": ("CLIPPROMPT_UPSTREAM_PROGRAD", FORK,
                ["TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.PREC", "fp32", "LOSS.NAME", "prograd", "LOSS.T", "1.0",
                 "LOSS.LAMBDA", "1.0"],
                ["TRAINER.PROGRAD.N_CTX", "4", "TRAINER.PROGRAD.CTX_INIT", "", "TRAINER.PROGRAD.PREC", "fp32"]),
    "CoCoOp": ("CLIPPROMPT_UPSTREAM_COOP", None,
               ["TRAINER.COCOOP.N_CTX", "4", "TRAINER.COCOOP.CTX_INIT", INIT, "TRAINER.COCOOP.PREC", "fp32"],
               ["TRAINER.COCOOP.N_CTX", "4", "TRAINER.COCOOP.CTX_INIT", INIT, "TRAINER.COCOOP.PREC", "fp32"]),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The random CLIP (rounded through fp16, so the official fp16 build of it is exact), one copy of the
    dataset per side (each writes its own few-shot cache), the shared config files."""
    from tools.parity_upstream import random_clip_state_dict

    root = tmp_path_factory.mktemp("official_checkpoints")
    clip_path = root / "clip.pt"
    torch.save({k: v.half().float() if v.is_floating_point() else v for k, v in random_clip_state_dict().items()},
               clip_path)
    for side in ("official", "ours"):
        write_pets_dataset(str(root / f"data_{side}"), n_test=6)
    (root / "one_epoch.yaml").write_text(ONE_EPOCH)
    (root / "oxford_pets.yaml").write_text('DATASET:\n  NAME: "OxfordPets"\n')
    return root


def official_result(run_dir):
    """(correct, total, macro F1 as printed) of the official evaluation in ``run_dir/log.txt``."""
    with open(os.path.join(run_dir, "log.txt")) as f:
        text = f.read()
    total, correct = re.findall(r"\* total: ([\d,]+)\n\* correct: ([\d,]+)", text)[-1]
    macro_f1 = re.findall(r"\* macro_f1: ([\d.]+)%", text)[-1]
    return int(correct.replace(",", "")), int(total.replace(",", "")), macro_f1


@requires_dassl
@pytest.mark.parametrize("trainer", list(CASES))
def test_official_checkpoint_gives_the_official_accuracy(trainer, workspace):
    variable, fork, official_opts, our_opts = CASES[trainer]
    upstream = os.environ.get(variable)
    if not upstream:
        pytest.skip(f"set {variable} to a checkout of the official {trainer} code to run it")
    dassl = os.path.join(upstream, fork) if fork else os.environ.get("CLIPPROMPT_UPSTREAM_DASSL")
    if not dassl:
        pytest.skip(f"set CLIPPROMPT_UPSTREAM_DASSL to a Dassl.pytorch source tree to run the official {trainer}")
    clip_path, cfg = str(workspace / "clip.pt"), str(workspace / "one_epoch.yaml")
    official_dir, ours_dir = str(workspace / f"official_{trainer}"), str(workspace / f"imported_{trainer}")
    common = ["--seed", "1", "--trainer", trainer, "--config-file", cfg]

    trained = run_cli(["-m", "tools.parity_upstream", "train", "--trainer", trainer, "--upstream", upstream,
                       "--dassl", dassl, "--clip", clip_path, "--", "--root", str(workspace / "data_official"),
                       "--dataset-config-file", str(workspace / "oxford_pets.yaml"), *common,
                       "--output-dir", official_dir, "MODEL.BACKBONE.NAME", "ViT-B/16", "DATASET.NUM_SHOTS", "2",
                       *official_opts], timeout=900)
    ok(trained)
    correct, total, macro_f1 = official_result(official_dir)

    converted = ok(run_cli(["-m", "tools.import_checkpoint", "--trainer", trainer, "--official", official_dir,
                            "--out", ours_dir, "--config-file", cfg, "--root", str(workspace / "data_ours"),
                            "--dataset-config-file", "configs/datasets/oxford_pets.yaml",
                            "MODEL.BACKBONE.PATH", clip_path, "DATASET.NUM_SHOTS", "2", *our_opts]))
    print(converted.stdout)
    command = shlex.split(converted.stdout.split("evaluate it with:\n", 1)[1].strip())
    assert command[:2] == ["python", "train.py"]
    evaluated = ok(run_cli(command[1:]))
    assert "class names not recorded" in evaluated.stdout
    record = results(os.path.join(ours_dir, "eval"))
    print(f"{trainer}: official {correct}/{total} correct, macro F1 {macro_f1}%; ours {record['accuracy']:.4f}% "
          f"of {record['num_samples']}, macro F1 {record['macro_f1']:.1f}%")
    assert record["num_samples"] == total
    assert record["accuracy"] == pytest.approx(100.0 * correct / total, abs=1e-9)
    decimals = len(macro_f1.partition(".")[2])  # Dassl prints one decimal, KgCoOp's fork two
    assert record["macro_f1"] == pytest.approx(float(macro_f1), abs=0.5 * 10 ** -decimals)
    # The official epoch moved the context away from its initialisation (CTX_INIT's embedding, which both
    # sides share): the accuracy compared is that of trained prompts.
    from clipprompt.clip.openai_clip import import_clip

    ctx = torch.load(os.path.join(ours_dir, "prompt_learner", "model.pth.tar-1"),
                     weights_only=True)["state_dict"]["prompt_learner.ctx"]
    if trainer != "ProGrad":  # ProGrad's context starts random here
        tokens = import_clip().tokenize(INIT)[0, 1:1 + ctx.shape[0]]
        start = torch.load(clip_path, weights_only=True)["token_embedding.weight"][tokens]
        assert not torch.allclose(ctx.float(), start, atol=1e-4)
