"""train.py and the protocol scripts through real Dassl, on synthetic data with a tiny CLIP."""

import glob
import os
import shutil

import pytest
import torch

from conftest import PET_CLASSES, requires_dassl, run_cli, write_pets_dataset
from helpers import DUAL_LEARNERS, MOVING, TINY, ctx_of, deep_args, ok, results, train_args, user_error

pytestmark = requires_dassl


def test_dualpromptmi_base_to_new_round_trip(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    base = str(tmp_path / "base")
    proc = ok(run_cli(train_args(pets_root, base, tiny_clip_path, tiny_cfg_file, extra=TINY)))
    assert "Class prototypes from" in proc.stdout
    res = results(base)
    assert (res["trainer"], res["subsample"], res["split"], res["seed"], res["shots"], res["epoch"]) == \
        ("DualPromptMI", "base", "test", 1, 2, 2)
    assert res["num_samples"] == 4 * 3  # 4 base classes (ceil 7/2) x 3 test images
    assert {"soft_only", "hand_only"} <= set(res["variants"])
    state = ctx_of(base, 2)  # loads with weights_only=True
    assert "prompt_learner.ctx" in state and "prototypes.count" in state

    new = str(tmp_path / "new")
    proc = ok(run_cli(train_args(pets_root, new, tiny_clip_path, tiny_cfg_file, subsample="new",
                                 extra=["--model-dir", base, "--eval-only", *TINY])))
    assert "class-independent state only" in proc.stdout
    res_new = results(new)
    assert res_new["subsample"] == "new" and res_new["num_samples"] == 3 * 3 and res_new["epoch"] == 2

    # an epoch that was not saved is named, with the ones that were
    proc = run_cli(train_args(pets_root, str(tmp_path / "new1"), tiny_clip_path, tiny_cfg_file, subsample="new",
                              extra=["--model-dir", base, "--load-epoch", "1", "--eval-only", *TINY]))
    user_error(proc, "saved epochs: 2")


def test_resume_continues_exactly_and_is_never_silent(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    extra = [*TINY, "TRAIN.CHECKPOINT_FREQ", "1", "TRAINER.DUALPROMPTMI.AUG.MODE", "inter"]
    full = str(tmp_path / "full")
    ok(run_cli(train_args(pets_root, full, tiny_clip_path, tiny_cfg_file, extra=extra)))

    # An interrupted run: only the epoch-1 checkpoint exists.
    cut = tmp_path / "cut"
    (cut / "prompt_learner").mkdir(parents=True)
    shutil.copy(os.path.join(full, "prompt_learner", "model.pth.tar-1"), cut / "prompt_learner")
    proc = run_cli(train_args(pets_root, str(cut), tiny_clip_path, tiny_cfg_file, extra=extra))
    user_error(proc, "already holds an unfinished run (last checkpoint: epoch 1)", f"--resume {cut}")
    proc = ok(run_cli(train_args(pets_root, str(cut), tiny_clip_path, tiny_cfg_file,
                                 extra=["--resume", str(cut), *extra])))
    assert "Resuming from" in proc.stdout
    resumed, straight = ctx_of(str(cut), 2), ctx_of(full, 2)
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key

    # --overwrite starts afresh and keeps the old run aside
    ok(run_cli(train_args(pets_root, full, tiny_clip_path, tiny_cfg_file, extra=["--overwrite", *TINY])))
    assert glob.glob(full + ".old-*")


def test_seed_zero_is_honoured_and_reproducible(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = str(tmp_path / name)
        proc = ok(run_cli(train_args(pets_root, out, tiny_clip_path, tiny_cfg_file, trainer="CoOp", seed=seed,
                                     extra=[*TINY, "TRAINER.COOP.N_CTX", "4"])))
        assert f"Setting fixed seed: {seed}" in proc.stdout
        runs[name] = ctx_of(out, 2)["prompt_learner.ctx"]
    assert torch.equal(runs["a"], runs["b"])
    assert not torch.equal(runs["a"], runs["c"])


def test_protocol_scripts_and_table(tmp_path, pets_root, tiny_clip_path):
    import sys

    env = {"DATA": pets_root, "OUTPUT": str(tmp_path / "output"), "SHOTS": "2", "PYTHON": sys.executable}
    for trainer in ("CoOp", "CoCoOp", "DualPromptMI"):
        for script in ("base2new_train.sh", "base2new_test.sh"):
            ok(run_cli(["bash", f"scripts/{script}", "oxford_pets", "1", "MODEL.BACKBONE.PATH", tiny_clip_path, *TINY],
                       env_extra={**env, "TRAINER": trainer}))
    # a finished run is skipped, not redone or overwritten
    proc = ok(run_cli(["bash", "scripts/base2new_train.sh", "oxford_pets", "1"], env_extra={**env, "TRAINER": "CoOp"}))
    assert "Results exist" in proc.stdout
    tree = os.path.join(env["OUTPUT"], "base2new")
    assert os.path.isfile(os.path.join(tree, "test_new/oxford_pets/shots_2/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1/seed1/results.json"))
    proc = ok(run_cli(["parse_test_res.py", tree]))
    rows = [line for line in proc.stdout.splitlines() if line.startswith("OxfordPets")]
    assert {row.split()[1] for row in rows} == {"CoOp", "CoCoOp", "DualPromptMI"}
    base_new = results(os.path.join(tree, "train_base/oxford_pets/shots_2/CoOp/vit_b16_ctxv1/seed1"))["accuracy"], \
        results(os.path.join(tree, "test_new/oxford_pets/shots_2/CoOp/vit_b16_ctxv1/seed1"))["accuracy"]
    assert os.path.isfile(os.path.join(tree, "results_base2new.csv"))
    csv = open(os.path.join(tree, "results_base2new.csv")).read()
    assert "CoOp" in csv and "CoCoOp" in csv
    b, n = base_new
    hm = 0.0 if b + n == 0 else 2 * b * n / (b + n)
    coop_row = next(r for r in rows if r.split()[1] == "CoOp")
    assert f"{hm:.2f}" in coop_row


def test_zero_shot_writes_results_without_training(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    out = str(tmp_path / "zs")
    ok(run_cli(train_args(pets_root, out, tiny_clip_path, tiny_cfg_file, trainer="ZeroshotCLIP", extra=TINY)))
    assert results(out)["trainer"] == "ZeroshotCLIP"
    assert not os.path.isdir(os.path.join(out, "prompt_learner"))


def test_zeroshotclip2_through_the_scripts_uses_the_prompt_ensemble(tmp_path, pets_root, tiny_clip_path):
    import sys

    from clipprompt.prompts.templates import IMAGENET_ENSEMBLE_TEMPLATES

    env = {"DATA": pets_root, "OUTPUT": str(tmp_path / "output"), "SHOTS": "2", "PYTHON": sys.executable,
           "TRAINER": "ZeroshotCLIP2"}
    for script, half in (("base2new_train.sh", "train_base"), ("base2new_test.sh", "test_new")):
        proc = ok(run_cli(["bash", f"scripts/{script}", "oxford_pets", "1", "MODEL.BACKBONE.PATH", tiny_clip_path, *TINY],
                          env_extra=env))
        prompts = next(line for line in proc.stdout.splitlines() if line.startswith("Hand-crafted prompts"))
        assert all(template in prompts for template in IMAGENET_ENSEMBLE_TEMPLATES), prompts
        res = results(os.path.join(env["OUTPUT"], "base2new", half, "oxford_pets/shots_2/ZeroshotCLIP2/vit_b16/seed1"))
        assert res["trainer"] == "ZeroshotCLIP2" and res["config"] == "vit_b16"


# ----- bad input: one line that names what to fix ---------------------------------------

def test_missing_dataset_folder_and_split_file(tmp_path, tiny_clip_path, tiny_cfg_file):
    proc = run_cli(train_args(str(tmp_path / "nowhere"), str(tmp_path / "o1"), tiny_clip_path, tiny_cfg_file, extra=TINY))
    user_error(proc, "oxford_pets", "docs/datasets.md")
    root = write_pets_dataset(str(tmp_path / "data"), classes=["a", "b"], n_train=1, n_val=1, n_test=1)
    os.remove(os.path.join(root, "oxford_pets", "split_zhou_OxfordPets.json"))
    proc = run_cli(train_args(root, str(tmp_path / "o2"), tiny_clip_path, tiny_cfg_file, extra=TINY))
    user_error(proc, "split_zhou_OxfordPets.json", "docs/datasets.md")


def test_unknown_trainer_dataset_and_clip_file(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    proc = run_cli(train_args(pets_root, str(tmp_path / "o1"), tiny_clip_path, tiny_cfg_file, trainer="CoOOp", extra=TINY))
    user_error(proc, "unknown trainer 'CoOOp'", "did you mean CoOp")
    proc = run_cli(train_args(pets_root, str(tmp_path / "o2"), tiny_clip_path, tiny_cfg_file,
                              extra=[*TINY, "DATASET.NAME", "OxfordPet"]))
    user_error(proc, "unknown dataset 'OxfordPet'", "OxfordPets")
    proc = run_cli(train_args(pets_root, str(tmp_path / "o3"), str(tmp_path / "missing_clip.pt"), tiny_cfg_file, extra=TINY))
    user_error(proc, "missing_clip.pt", "MODEL.BACKBONE.PATH")
    proc = run_cli(train_args(pets_root, str(tmp_path / "o4"), tiny_clip_path, tiny_cfg_file, extra=[*TINY, "OPTIM.NOPE", "1"]))
    user_error(proc, "OPTIM.NOPE")


def test_bad_checkpoint_folders(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli(train_args(pets_root, str(tmp_path / "e1"), tiny_clip_path, tiny_cfg_file, subsample="new",
                              extra=["--model-dir", str(empty), "--eval-only", *TINY]))
    user_error(proc, "no checkpoints", str(empty))

    coop_csc = str(tmp_path / "coop_csc")
    ok(run_cli(train_args(pets_root, coop_csc, tiny_clip_path, tiny_cfg_file, trainer="CoOp",
                          extra=[*TINY, "OPTIM.MAX_EPOCH", "1", "TRAINER.COOP.CSC", "True", "TRAINER.COOP.N_CTX", "2"])))
    proc = run_cli(train_args(pets_root, str(tmp_path / "e2"), tiny_clip_path, tiny_cfg_file, trainer="DualPromptMI",
                              subsample="new", extra=["--model-dir", coop_csc, "--eval-only", *TINY]))
    user_error(proc, "trained with CoOp, not DualPromptMI")
    proc = run_cli(train_args(pets_root, str(tmp_path / "e3"), tiny_clip_path, tiny_cfg_file, trainer="CoOp", subsample="new",
                              extra=["--model-dir", coop_csc, "--eval-only", *TINY, "TRAINER.COOP.CSC", "True",
                                     "TRAINER.COOP.N_CTX", "2"]))
    user_error(proc, "class-specific")


def test_fewer_images_than_shots_warns_with_count(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    args = train_args(pets_root, str(tmp_path / "w"), tiny_clip_path, tiny_cfg_file, extra=["--no-train", *TINY])
    args[args.index("DATASET.NUM_SHOTS") + 1] = "8"
    proc = ok(run_cli(args))
    warned = [line.split("UserWarning: ", 1)[1] for line in proc.stderr.splitlines() if "UserWarning: " in line]
    # every class has 4 training images (< 8 shots) and 2 validation images (< min(8, 4) shots, CoOp's rule)
    train_line = ("7 class(es) have fewer than 8 images, using all they have: "
                  + ", ".join(f"'{name}' (4)" for name in PET_CLASSES))
    val_line = ("7 class(es) have fewer than 4 images, using all they have: "
                + ", ".join(f"'{name}' (2)" for name in PET_CLASSES))
    assert train_line in warned and val_line in warned, warned


def test_fewshot_and_cross_dataset_scripts(tmp_path, pets_root, tiny_clip_path):
    import sys

    env = {"DATA": pets_root, "OUTPUT": str(tmp_path / "output"), "SHOTS": "2", "PYTHON": sys.executable,
           "TRAINER": "DualPromptMI", "CFG": "vit_b16_c4_ep10_batch4_ctxv1", "SOURCE": "oxford_pets"}
    opts = ["MODEL.BACKBONE.PATH", tiny_clip_path, *TINY]
    ok(run_cli(["bash", "scripts/fewshot_train.sh", "oxford_pets", "1", *opts], env_extra=env))
    ok(run_cli(["bash", "scripts/xd_train.sh", "1", *opts], env_extra=env))
    ok(run_cli(["bash", "scripts/xd_test.sh", "oxford_pets", "1", *opts], env_extra={**env, "LOADEP": "2"}))
    out = env["OUTPUT"]
    few = results(os.path.join(out, "fewshot/oxford_pets/shots_2/DualPromptMI/vit_b16_c4_ep10_batch4_ctxv1/seed1"))
    assert few["subsample"] == "all" and few["num_samples"] == 7 * 3
    xd = results(os.path.join(out, "xd/evaluation/DualPromptMI/vit_b16_c4_ep10_batch4_ctxv1/oxford_pets/seed1"))
    assert xd["epoch"] == 2 and xd["subsample"] == "all"
    proc = ok(run_cli(["parse_test_res.py", os.path.join(out, "xd")]))
    assert "OxfordPets" in proc.stdout
    # a missing dataset config is named by the script
    proc = run_cli(["bash", "scripts/base2new_train.sh", "no_such_set", "1"], env_extra=env)
    assert proc.returncode == 2 and "configs/datasets/no_such_set.yaml" in proc.stderr


def test_missing_trainer_or_dataset_config_asks_for_the_flag(tmp_path, pets_root, tiny_clip_path, tiny_cfg_file):
    proc = run_cli(["train.py", "--trainer", "DualPromptMI", "--output-dir", str(tmp_path / "o")])
    last = user_error(proc, "no dataset given", "--dataset-config-file")
    assert "unknown dataset ''" not in last
    proc = run_cli(["train.py", "--dataset-config-file", "configs/datasets/oxford_pets.yaml", "--output-dir", str(tmp_path / "o")])
    user_error(proc, "no trainer given", "--trainer", "DualPromptMI")


# ----- deep vision-language prompts: MaPLe and PromptSRC -----------------------------------
# The runs are tests/helpers.deep_args's (its comment says how they are set up).
DEEP_PROMPT_KEYS = {
    "MaPLe": ["ctx", "text_deep", *(f"coupling.{i}.{p}" for i in range(3) for p in ("weight", "bias"))],
    "PromptSRC": ["ctx", "text_deep", "vision_first", "vision_deep"],  # also the aggregate's order
}


@pytest.mark.parametrize("trainer", ["MaPLe", "PromptSRC"])
def test_deep_trainers_base_to_new_and_exact_resume(tmp_path, pets_root, tiny_clip3_path, tiny_cfg_file,
                                                    deep_trainer_run, trainer):
    from clipprompt.methods.promptsrc import gaussian_epoch_weights

    full = deep_trainer_run(trainer)
    res = results(full)
    assert (res["trainer"], res["subsample"], res["epoch"], res["num_samples"]) == (trainer, "base", 2, 4 * 3)
    first, last = ctx_of(full, 1), ctx_of(full, 2)
    keys = [f"prompt_learner.{k}" for k in DEEP_PROMPT_KEYS[trainer]]
    assert set(keys) <= set(last)
    assert all(not torch.equal(first[k], last[k]) for k in keys)  # every prompt parameter trained
    if trainer == "PromptSRC":  # the last checkpoint holds the aggregate: w1 * epoch 1 + w2 * epoch 2
        w1, _ = gaussian_epoch_weights(2, 1.5, 1.0)
        assert int(first["aggregate.epochs_added"]) == 1 and int(last["aggregate.epochs_added"]) == 2
        for index, key in enumerate(keys):
            torch.testing.assert_close(first[f"aggregate.sum_{index}"], w1 * first[key], rtol=1e-6, atol=1e-8)
            assert torch.equal(last[key], last[f"aggregate.sum_{index}"])
        with open(os.path.join(full, "log.txt")) as f:
            assert "the prompts are the weighted mean over 2 epochs" in f.read()

    new = str(tmp_path / "new")
    proc = ok(run_cli(deep_args(trainer, pets_root, new, tiny_clip3_path, tiny_cfg_file, subsample="new",
                                extra=["--model-dir", full, "--eval-only"])))
    assert "class-independent state only" in proc.stdout
    res_new = results(new)
    assert (res_new["trainer"], res_new["subsample"], res_new["epoch"], res_new["num_samples"]) == (trainer, "new", 2, 3 * 3)

    cut = tmp_path / "cut"  # an interrupted run: only the epoch-1 checkpoint exists
    (cut / "prompt_learner").mkdir(parents=True)
    shutil.copy(os.path.join(full, "prompt_learner", "model.pth.tar-1"), cut / "prompt_learner")
    proc = ok(run_cli(deep_args(trainer, pets_root, str(cut), tiny_clip3_path, tiny_cfg_file, extra=["--resume", str(cut)])))
    assert "Resuming from" in proc.stdout
    resumed = ctx_of(str(cut), 2)
    assert set(resumed) == set(last)
    for key in last:
        assert torch.equal(resumed[key], last[key]), key


def test_deep_prompts_deeper_than_the_tower_are_one_line(tmp_path, pets_root, tiny_clip3_path, tiny_cfg_file):
    proc = run_cli(train_args(pets_root, str(tmp_path / "deep"), tiny_clip3_path, tiny_cfg_file, trainer="MaPLe",
                              extra=[*TINY, "TRAINER.MAPLE.PROMPT_DEPTH", "4"]))
    user_error(proc, "TRAINER.MAPLE.PROMPT_DEPTH must lie in 1..3", "got 4")


# ----- DualPromptMI's class prototypes over deep prompts ---------------------------------------
# With vision prompts (ivlp with vision tokens, maple) the image features train, so the prototypes
# the mixup draws from are recomputed at every epoch start; with CoOp's context once, as before.


def class_means(features, labels, num_classes):
    """normalise(per-class mean feature), as ClassPrototypes.prototypes() describes them."""
    return torch.nn.functional.normalize(
        torch.stack([features[labels == c].mean(dim=0) for c in range(num_classes)]), dim=1)


def dualpromptmi_trainer(out, pets_root, clip_path, cfg_file, opts):
    """The Dassl trainer in this process: sequential batches, no random transform, no test."""
    from dassl.config import get_cfg_default
    from dassl.engine import build_trainer

    import datasets  # noqa: F401  (registers the datasets)
    import trainers  # noqa: F401  (registers the trainers)
    from clipprompt.config import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    cfg.merge_from_file(cfg_file)
    cfg.merge_from_list(["DATASET.ROOT", pets_root, "DATASET.NAME", "OxfordPets", "DATASET.NUM_SHOTS", "2",
                         "DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.NAME", "DualPromptMI", "MODEL.BACKBONE.PATH",
                         clip_path, "SEED", "1", "USE_CUDA", "False", "OUTPUT_DIR", out, "TEST.NO_TEST", "True", *TINY,
                         "INPUT.TRANSFORMS", "['normalize']", "DATALOADER.TRAIN_X.SAMPLER", "SequentialSampler",
                         *MOVING, *opts])
    return build_trainer(cfg)


@pytest.mark.parametrize("learner", ["coop", "ivlp", "promptsrc"])
def test_dualpromptmi_prototypes_describe_the_image_tower_of_each_epoch(tmp_path, monkeypatch, pets_root,
                                                                        tiny_clip3_path, tiny_cfg_file, learner):
    """Every prototype computation is checked against the mean of the training set's features
    computed independently at that moment (fp32, tolerance 1e-5)."""
    trainer = dualpromptmi_trainer(str(tmp_path), pets_root, tiny_clip3_path, tiny_cfg_file, DUAL_LEARNERS[learner])
    model = trainer.model

    def current_prototypes():
        with torch.no_grad():
            pairs = [trainer.parse_batch_train(batch) for batch in trainer.train_loader_x]
            features = torch.cat([model.encode_image(image) for image, _ in pairs])
        return class_means(features, torch.cat([label for _, label in pairs]), trainer.num_classes)

    refresh, seen = model.refresh_prototypes, []

    def recorded(batches):
        count = refresh(batches)
        seen.append((count, model.prototypes.prototypes().clone(), current_prototypes()))
        return count

    monkeypatch.setattr(model, "refresh_prototypes", recorded)
    trainer.train()
    # 4 classes x 2 shots; promptsrc: once more after the aggregate replaced the prompts
    assert [count for count, _, _ in seen] == [8] * {"coop": 1, "ivlp": 2, "promptsrc": 3}[learner]
    for _, prototypes, expected in seen:
        torch.testing.assert_close(prototypes, expected, rtol=0, atol=1e-5)
    if learner == "coop":  # the frozen tower: the one pass before training still holds after it
        assert torch.equal(model.prototypes.prototypes(), seen[0][1])
        torch.testing.assert_close(seen[0][1], current_prototypes(), rtol=0, atol=1e-6)
    else:  # epoch 1 trained the vision prompts: epoch 2 starts from prototypes of the moved features
        assert (seen[1][1] - seen[0][1]).abs().max() > 1e-3
    if learner == "promptsrc":  # the run ends with the aggregate's prototypes, not epoch 2's
        assert (seen[2][1] - seen[1][1]).abs().max() > 1e-4 and torch.equal(model.prototypes.prototypes(), seen[2][1])
        assert model.aggregate.complete


def test_dualpromptmi_vision_prompts_renew_prototypes_and_resume_exactly(tmp_path, pets_root, tiny_clip3_path,
                                                                          tiny_cfg_file):
    """Through train.py with random flips: a run resumed at epoch 2 renews its prototypes from the
    restored RNG state, and ends bit for bit where the uninterrupted run ends."""
    extra = [*TINY, "TRAIN.CHECKPOINT_FREQ", "1", *MOVING, *DUAL_LEARNERS["ivlp"]]
    full = str(tmp_path / "full")
    proc = ok(run_cli(train_args(pets_root, full, tiny_clip3_path, tiny_cfg_file, extra=extra)))
    for epoch in (1, 2):
        assert f"Class prototypes from 8 training images (epoch {epoch}, prompted image tower)" in proc.stdout
    first, last = ctx_of(full, 1), ctx_of(full, 2)
    assert (first["prototypes.feature_sum"] - last["prototypes.feature_sum"]).abs().max() > 1e-3
    assert torch.equal(first["prototypes.count"], last["prototypes.count"])  # renewed, not accumulated

    cut = tmp_path / "cut"
    (cut / "prompt_learner").mkdir(parents=True)
    shutil.copy(os.path.join(full, "prompt_learner", "model.pth.tar-1"), cut / "prompt_learner")
    proc = ok(run_cli(train_args(pets_root, str(cut), tiny_clip3_path, tiny_cfg_file,
                                 extra=["--resume", str(cut), *extra])))
    assert "Resuming from" in proc.stdout
    assert "(epoch 2, prompted image tower)" in proc.stdout and "(epoch 1," not in proc.stdout
    resumed = ctx_of(str(cut), 2)
    assert set(resumed) == set(last)
    for key in last:
        assert torch.equal(resumed[key], last[key]), key


@pytest.mark.parametrize("learner", ["coop", "ivlp"])
def test_dualpromptmi_running_prototypes_restart_each_epoch_with_vision_prompts(tmp_path, pets_root, tiny_clip3_path,
                                                                               tiny_cfg_file, learner):
    """AUG.PROTOTYPES running: the mean of the features the steps saw, over the whole run with a
    frozen image tower, over the current epoch's steps with vision prompts."""
    opts = ["TRAINER.DUALPROMPTMI.AUG.PROTOTYPES", "running", *DUAL_LEARNERS[learner]]
    trainer = dualpromptmi_trainer(str(tmp_path), pets_root, tiny_clip3_path, tiny_cfg_file, opts)
    trainer.train()  # 2 epochs of 8 images
    assert trainer.model.prototypes.count.tolist() == ([4] * 4 if learner == "coop" else [2] * 4)
