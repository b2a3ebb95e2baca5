"""``python -m tools.parity_upstream forward`` and ``speed``: the official trainers' forward/backward
against ours, and the step time of both.

The comparisons need the official checkouts, given through environment variables (never fetched here):

* ``CLIPPROMPT_UPSTREAM_KGCOOP``: htyao89/KgCoOp (its Dassl.ProGrad.pytorch is used as the Dassl tree)
* ``CLIPPROMPT_UPSTREAM_PROGRAD``: BeierZhu/Prompt-align (likewise)
* ``CLIPPROMPT_UPSTREAM_MAPLE``: muzairkhattak/multimodal-prompt-learning
* ``CLIPPROMPT_UPSTREAM_PROMPTSRC``: muzairkhattak/PromptSRC (PromptSRC and IVLP)
* ``CLIPPROMPT_UPSTREAM_COOP``: KaiyangZhou/CoOp (CoOp and CoCoOp)
* ``CLIPPROMPT_UPSTREAM_DASSL``: KaiyangZhou/Dassl.pytorch, for all but KgCoOp and ProGrad

Each comparison is skipped, with the variable to set as its reason, when its checkout is not given.
The bad-input tests need neither the checkouts nor Dassl.
"""

import os
import re

import pytest
from conftest import run_cli

FORK = "Dassl.ProGrad.pytorch"  # the Dassl fork inside the KgCoOp and ProGrad repositories
CASES = {  # trainer: (variable of the checkout, Dassl: the fork inside it, else CLIPPROMPT_UPSTREAM_DASSL)
    "KgCoOp": ("CLIPPROMPT_UPSTREAM_KGCOOP", FORK),
    "ProGrad": ("CLIPPROMPT_UPSTREAM_PROGRAD", FORK),
    "MaPLe": ("CLIPPROMPT_UPSTREAM_MAPLE", None),
    "PromptSRC": ("CLIPPROMPT_UPSTREAM_PROMPTSRC", None),
    "IVLP": ("CLIPPROMPT_UPSTREAM_PROMPTSRC", None),
    "CoOp": ("CLIPPROMPT_UPSTREAM_COOP", None),
    "CoCoOp": ("CLIPPROMPT_UPSTREAM_COOP", None),
}


def forward(*args):
    return run_cli(["-m", "tools.parity_upstream", "forward", *args], timeout=900)


@pytest.mark.parametrize("trainer", sorted(CASES))
def test_forward_matches_the_official_code(trainer):
    variable, fork = CASES[trainer]
    upstream = os.environ.get(variable)
    if not upstream:
        pytest.skip(f"set {variable} to a checkout of the official {trainer} code to compare with it")
    if fork:
        dassl = os.path.join(upstream, fork)
    else:
        dassl = os.environ.get("CLIPPROMPT_UPSTREAM_DASSL")
        if not dassl:
            pytest.skip(f"set CLIPPROMPT_UPSTREAM_DASSL to a Dassl.pytorch source tree to run the official {trainer}")
    proc = forward("--trainer", trainer, "--upstream", upstream, "--dassl", dassl)
    print(proc.stdout)  # the tool's table (pytest -rP shows it)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    checks = [line for line in lines if line.endswith((" ok", " FAIL"))]
    assert checks and all(line.endswith(" ok") for line in checks), proc.stdout
    assert any("logits, new classes" in line for line in checks)
    assert any(line.startswith(f"{trainer} grad ") for line in checks)
    if trainer == "PromptSRC":
        for term in ("L1 text", "L1 image", "KL(zero-shot", "GPA prompts"):
            assert any(term in line for line in checks), term
    if trainer == "ProGrad":
        assert any("projection applied" in line for line in lines), proc.stdout


def speed(*args):
    return run_cli(["-m", "tools.parity_upstream", "speed", *args], timeout=900)


@pytest.mark.parametrize("trainer", ["MaPLe", "PromptSRC"])
def test_speed_times_both_sides(trainer):
    # The small CLIP, 5 classes, one step per side: that it runs and what it prints, not the numbers
    # (docs/experiments/2026-12-07-step-time-vs-official.md has those, at ViT-B/16 shapes).
    variable = CASES[trainer][0]
    upstream, dassl = os.environ.get(variable), os.environ.get("CLIPPROMPT_UPSTREAM_DASSL")
    if not upstream or not dassl:
        pytest.skip(f"set {variable} and CLIPPROMPT_UPSTREAM_DASSL to time the official {trainer} code")
    proc = speed("--trainer", trainer, "--upstream", upstream, "--dassl", dassl, "--clip-shapes", "small",
                 "--classes", "5", "--steps", "1", "--warmup", "0")
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    step, positions, breakdown = {}, {}, {}
    for side in ("ours", "official"):
        found = re.search(rf"^{trainer} {side}: median step ([0-9.]+) s", proc.stdout, re.M)
        assert found, proc.stdout
        step[side] = float(found.group(1))
        found = re.search(rf"^{trainer} {side} breakdown: text positions (\d+); forward: (.*)$", proc.stdout, re.M)
        assert found, proc.stdout
        positions[side], breakdown[side] = int(found.group(1)), found.group(2)
        assert "text tower" in breakdown[side] and "image tower" in breakdown[side], breakdown[side]
        # PromptSRC's frozen image pass is timed on both sides; MaPLe has none
        assert ("frozen image tower" in breakdown[side]) == (trainer == "PromptSRC"), breakdown[side]
    assert positions["official"] == 77 and positions["ours"] < 77  # the official code's full text pass
    ratio = re.search(rf"^{trainer} ratio ours/official: ([0-9.]+)$", proc.stdout, re.M)
    assert ratio and abs(float(ratio.group(1)) - step["ours"] / step["official"]) < 5e-3, proc.stdout


# ----- bad input: exit 2 and one error line; no checkout, no Dassl needed --------------------------------
def assert_bad_input(proc, *words):
    output = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(output) == 1 and output[0].startswith("error: "), output
    for word in words:
        assert word in output[0]


def fake_dassl(root, prograd=False):
    (root / "dassl" / "engine").mkdir(parents=True)
    (root / "dassl" / "engine" / "trainer.py").write_text(
        "def prograd_backward_and_update(): pass\n" if prograd else "class TrainerBase: pass\n")
    return str(root)


def fake_checkout(root, folder, trainer_file, marker):
    code = root / folder if folder else root
    (code / "trainers").mkdir(parents=True)
    (code / "clip").mkdir()
    (code / "clip" / "clip.py").write_text("")
    (code / "train.py").write_text("")
    (code / trainer_file).write_text(f"{marker}:\n    pass\n")
    return str(root)


def test_missing_upstream_folder(tmp_path):
    proc = forward("--trainer", "MaPLe", "--upstream", str(tmp_path / "nowhere"),
                   "--dassl", fake_dassl(tmp_path / "Dassl"))
    assert_bad_input(proc, "--upstream", "muzairkhattak/multimodal-prompt-learning")


def test_checkout_of_another_repository(tmp_path):
    # A MaPLe checkout has no trainers/promptsrc.py: not the PromptSRC repository.
    upstream = fake_checkout(tmp_path / "maple", "", "trainers/maple.py", "class MaPLe(TrainerX)")
    proc = forward("--trainer", "PromptSRC", "--upstream", upstream, "--dassl", fake_dassl(tmp_path / "Dassl"))
    assert_bad_input(proc, "muzairkhattak/PromptSRC", "trainers/promptsrc.py")


def test_kgcoop_code_is_looked_for_in_its_subfolder(tmp_path):
    upstream = fake_checkout(tmp_path / "kg", "", "trainers/kgcoop.py", "class KgCoOp(TrainerX)")  # not in KgCoOp/
    proc = forward("--trainer", "KgCoOp", "--upstream", upstream, "--dassl", fake_dassl(tmp_path / "Dassl"))
    assert_bad_input(proc, "htyao89/KgCoOp", "KgCoOp/trainers/kgcoop.py")


def test_dassl_that_is_not_a_dassl_tree(tmp_path):
    upstream = fake_checkout(tmp_path / "maple", "", "trainers/maple.py", "class MaPLe(TrainerX)")
    proc = forward("--trainer", "MaPLe", "--upstream", upstream, "--dassl", str(tmp_path))
    assert_bad_input(proc, "--dassl", "dassl/engine/trainer.py")


def test_prograd_needs_its_dassl_fork(tmp_path):
    upstream = fake_checkout(tmp_path / "pg", "ProGrad.public", "trainers/prograd.py", "class ProGrad(TrainerX)")
    proc = forward("--trainer", "ProGrad", "--upstream", upstream, "--dassl", fake_dassl(tmp_path / "Dassl"))
    assert_bad_input(proc, "prograd_backward_and_update", "Dassl.ProGrad.pytorch")


def test_missing_clip_file(tmp_path):
    upstream = fake_checkout(tmp_path / "pg", "ProGrad.public", "trainers/prograd.py", "class ProGrad(TrainerX)")
    proc = forward("--trainer", "ProGrad", "--upstream", upstream, "--dassl", fake_dassl(tmp_path / "D", True),
                   "--clip", str(tmp_path / "missing.pt"))
    assert_bad_input(proc, "--clip", "missing.pt")


def test_unknown_trainer(tmp_path):
    proc = forward("--trainer", "VPT", "--upstream", str(tmp_path), "--dassl", str(tmp_path))
    assert_bad_input(proc, "VPT")


def test_official_training_needs_the_clip_file(tmp_path):
    # train: the official load_clip_to_cpu would download OpenAI's weights; --clip stands for them.
    upstream = fake_checkout(tmp_path / "coop", "", "trainers/coop.py", "class CoOp(TrainerX)")
    proc = run_cli(["-m", "tools.parity_upstream", "train", "--trainer", "CoOp", "--upstream", upstream,
                    "--dassl", fake_dassl(tmp_path / "Dassl"), "--", "--root", str(tmp_path)])
    assert_bad_input(proc, "--clip is required")
def test_speed_takes_only_the_deep_prompt_trainers(tmp_path):
    proc = speed("--trainer", "KgCoOp", "--upstream", str(tmp_path), "--dassl", str(tmp_path))
    assert_bad_input(proc, "KgCoOp")


@pytest.mark.parametrize("flag", ["--steps", "--repeats", "--classes"])
def test_speed_needs_at_least_one(tmp_path, flag):
    upstream = fake_checkout(tmp_path / "maple", "", "trainers/maple.py", "class MaPLe(TrainerX)")
    proc = speed("--trainer", "MaPLe", "--upstream", upstream, "--dassl", fake_dassl(tmp_path / "Dassl"), flag, "0")
    assert_bad_input(proc, flag)


def test_speed_checks_the_checkout(tmp_path):
    upstream = fake_checkout(tmp_path / "maple", "", "trainers/maple.py", "class MaPLe(TrainerX)")
    proc = speed("--trainer", "PromptSRC", "--upstream", upstream, "--dassl", fake_dassl(tmp_path / "Dassl"))
    assert_bad_input(proc, "muzairkhattak/PromptSRC")
