"""Bad inputs a new user tried, end to end through train.py: each ends in one clear line (or, for
Ctrl-C, one line and exit 130), before anything trains or writes, and no wrong number is saved."""

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time

import torch
from PIL import Image

from conftest import REPO, requires_dassl, run_cli
from helpers import TINY, ok, train_args, user_error

pytestmark = requires_dassl

CLASSES = ["red", "green", "blue", "grey"]  # labels 0..3


def write_custom_dataset(root, edit=None, per_class=(4, 1, 2)):
    """4 colour classes as a user's own dataset (CoOp split format); ``edit(split)`` breaks it."""
    images = os.path.join(root, "mine", "images")
    os.makedirs(images, exist_ok=True)
    split = {"train": [], "val": [], "test": []}
    g = torch.Generator().manual_seed(0)
    for label, name in enumerate(CLASSES):
        colour = torch.rand(3, generator=g)
        for part, count in zip(split, per_class):
            for i in range(count):
                pixels = (colour * 200 + torch.rand(32, 32, 3, generator=g) * 55).byte().numpy()
                rel = f"{name}_{part}_{i}.png"
                Image.fromarray(pixels).save(os.path.join(images, rel))
                split[part].append([rel, label, name])
    if edit:
        edit(split)
    path = os.path.join(root, "mine", "split.json")
    with open(path, "w") as f:
        json.dump(split, f)
    return path


def custom_args(root, out, clip_path, cfg_file, extra=(), subsample="all"):
    args = train_args(root, out, clip_path, cfg_file, trainer="CoOp", subsample=subsample,
                      extra=[*TINY, "TRAINER.COOP.N_CTX", "2", *extra])
    i = args.index("configs/datasets/oxford_pets.yaml")
    args[i] = "configs/datasets/custom.yaml"
    return [*args, "DATASET.CUSTOM.IMAGE_DIR", "mine/images", "DATASET.CUSTOM.SPLIT_FILE", "mine/split.json"]


def refused_up_front(proc, out, *fragments):
    """One error line, no config dump, and the output folder never made: nothing to block a rerun."""
    last = user_error(proc, *fragments)
    assert "** Config **" not in proc.stdout
    assert not os.path.exists(out)
    return last


def test_a_test_label_beyond_the_classes_is_refused_before_anything_is_saved(tmp_path, tiny_clip_path, tiny_cfg_file):
    # Row 1: label 7 in a 4-class test split used to end in exit 0 and a wrong results.json.
    split_file = write_custom_dataset(str(tmp_path), edit=lambda s: s["test"][3].__setitem__(1, 7))
    out = str(tmp_path / "out")
    proc = run_cli(custom_args(str(tmp_path), out, tiny_clip_path, tiny_cfg_file))
    last = refused_up_front(proc, out, split_file, "test[3]", "has label 7", "labels must be 0..4", "no entry has label 4, 5, 6")
    # the split names the offender's class: renaming the label is the fix
    assert "'green'" in last


def test_a_train_label_or_a_label_gap_is_refused_and_the_rerun_is_not_blocked(tmp_path, tiny_clip_path, tiny_cfg_file):
    # Row 2: an out-of-range train label, and labels 0, 1, 2, 5 (a gap), used to crash mid-epoch.
    root, out = str(tmp_path), str(tmp_path / "out")
    write_custom_dataset(root, edit=lambda s: s["train"][0].__setitem__(1, 7))
    refused_up_front(run_cli(custom_args(root, out, tiny_clip_path, tiny_cfg_file)), out, "train[0]", "has label 7")

    def gap(split):
        for part in split.values():
            for entry in part:
                if entry[1] == 3:
                    entry[1] = 5
    write_custom_dataset(root, edit=gap)
    last = refused_up_front(run_cli(custom_args(root, out, tiny_clip_path, tiny_cfg_file)), out, "has label 5",
                            "no entry has label 3")
    assert "(and 6 more)" in last  # 4 train + 1 val + 2 test entries of that class: the first and 6 more

    write_custom_dataset(root)  # fixed: the same command now runs, nothing in the way
    ok(run_cli(custom_args(root, out, tiny_clip_path, tiny_cfg_file, extra=["OPTIM.MAX_EPOCH", "1"])))


def test_a_missing_image_is_found_whatever_the_few_shot_draw(tmp_path, tiny_clip_path, tiny_cfg_file):
    # Row 3: a 2-shot draw that happened not to pick the missing image used to run on.
    root, out = str(tmp_path), str(tmp_path / "out")
    write_custom_dataset(root)
    os.remove(os.path.join(root, "mine", "images", "blue_train_3.png"))
    # every path is checked, not the draw (tests/test_split_validation.py shows it entry by entry)
    refused_up_front(run_cli(custom_args(root, out, tiny_clip_path, tiny_cfg_file)), out,
                     "train[11]", "'blue_train_3.png'", "does not exist")


def test_a_failed_run_says_so_and_the_advice_fits_what_the_folder_holds(tmp_path, pets_root, tiny_clip_path,
                                                                       tiny_cfg_file):
    out = str(tmp_path / "out")
    # fails while the model is built, after the folder was made
    proc = run_cli(train_args(pets_root, out, tiny_clip_path, tiny_cfg_file, extra=[*TINY, "INPUT.SIZE", "(64, 64)"]))
    user_error(proc, "INPUT.SIZE")
    with open(os.path.join(out, "run_status.json")) as f:
        status = json.load(f)
    assert status["status"] == "failed" and "INPUT.SIZE" in status["error"]
    proc = run_cli(train_args(pets_root, out, tiny_clip_path, tiny_cfg_file, extra=TINY))
    last = user_error(proc, "already holds a failed run (no checkpoint)", "nothing to resume", "--overwrite")
    assert "--resume" not in last
    proc = run_cli(train_args(pets_root, out, tiny_clip_path, tiny_cfg_file, extra=["--resume", out, *TINY]))
    user_error(proc, f"--resume {out}: it holds no checkpoint", "--overwrite")


def test_ctrl_c_ends_in_one_line_and_the_printed_command_resumes_into_the_same_log(tmp_path, pets_root,
                                                                                  tiny_clip_path, tiny_cfg_file):
    # Rows 4 and 5: Ctrl-C printed a 20-line traceback; a resumed run logged to log.txt-<time>.
    out = str(tmp_path / "run")
    args = train_args(pets_root, out, tiny_clip_path, tiny_cfg_file,
                      extra=[*TINY, "OPTIM.MAX_EPOCH", "400", "TRAIN.CHECKPOINT_FREQ", "1"])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT: give the
    # run the default handler, as a terminal would, so the test holds when the suite runs in the background.
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = os.path.join(out, "prompt_learner", "model.pth.tar-1")
    deadline = time.time() + 240
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: checkpoint of epoch ") and "resume with: python train.py" in last, last
    with open(os.path.join(out, "run_status.json")) as f:
        status = json.load(f)
    epoch = int(last.split("checkpoint of epoch ")[1].split()[0])
    assert status["status"] == "interrupted" and status["last_checkpoint_epoch"] == epoch

    command = shlex.split(last.split("resume with: ", 1)[1])
    assert command[:2] == ["python", "train.py"] and command[command.index("--resume") + 1] == out
    # the printed command as it is, but ending one epoch later (a later KEY VALUE pair wins)
    proc = ok(run_cli([*command[1:], "OPTIM.MAX_EPOCH", str(epoch + 1)]))
    assert "Resuming from" in proc.stdout
    logs = sorted(os.listdir(out))
    assert [name for name in logs if name.startswith("log.txt")] == ["log.txt"]
    with open(os.path.join(out, "log.txt")) as f:
        log = f.read()
    assert log.count("** Config **") == 2 and "===== resumed" in log and log.rstrip().endswith(log.rstrip().splitlines()[-1])
    assert log.index("===== resumed") < log.index("Resuming from")
    with open(os.path.join(out, "run_status.json")) as f:
        assert json.load(f)["status"] == "finished"
    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["epoch"] == epoch + 1


def test_a_checkpoint_of_random_bytes_is_called_corrupt(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    # Row 6: it used to blame "a foreign writer" for plain corruption.
    model = tmp_path / "model" / "prompt_learner"
    model.mkdir(parents=True)
    (model / "model.pth.tar-2").write_bytes(random.Random(1).randbytes(4096))
    proc = run_cli(train_args(pets_root, str(tmp_path / "eval"), tiny_clip_path, tiny_cfg_file, trainer="CoOp",
                              extra=["--eval-only", "--model-dir", str(tmp_path / "model"), *TINY]))
    last = refused_up_front(proc, str(tmp_path / "eval"), "model.pth.tar-2", "corrupt or not a checkpoint")
    assert "other code" not in last


def test_a_trainer_name_is_matched_case_insensitively_among_this_toolkits_trainers(tmp_path, pets_root,
                                                                                  tiny_clip_path, tiny_cfg_file):
    # Row 7: "did you mean CoCoOp?" and 20 of Dassl's trainers this toolkit cannot run.
    out = str(tmp_path / "o")
    last = refused_up_front(run_cli(train_args(pets_root, out, tiny_clip_path, tiny_cfg_file, trainer="coop", extra=TINY)),
                            out, "unknown trainer 'coop'", "did you mean CoOp?")
    assert "ADDA" not in last and "AdaBN" not in last and "DualPromptMI" in last


def test_flags_after_the_key_value_pairs_are_named_as_such(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    # Row 8: "got an odd number" or "Non-existent key: --model-dir".
    out = str(tmp_path / "o")
    base = train_args(pets_root, out, tiny_clip_path, tiny_cfg_file, extra=TINY)
    for tail in (["--eval-only", "--model-dir", "X"], ["--eval-only"], ["--model-dir", "X"]):
        last = refused_up_front(run_cli([*base, *tail]), out, "put --flags before the KEY VALUE pairs", tail[0])
        assert "odd number" not in last and "Non-existent key" not in last


def test_errors_come_before_the_config_dump_and_the_model_build(tmp_path, pets_root, tiny_clip3_path, tiny_cfg_file):
    # Row 10: the error was the last of ~360 lines, after the model build.
    out = str(tmp_path / "deep")
    start = time.time()
    proc = run_cli(train_args(pets_root, out, tiny_clip3_path, tiny_cfg_file, trainer="PromptSRC",
                              extra=[*TINY, "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2",
                                     "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "5"]))
    refused_up_front(proc, out, "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION must lie in 1..3", "got 5")
    assert "Loading CLIP" not in proc.stdout and "Building" not in proc.stdout
    assert proc.stdout.strip() == "", proc.stdout[-2000:]
    assert time.time() - start < 60
