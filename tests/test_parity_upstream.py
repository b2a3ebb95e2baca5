"""The sample-for-sample harness (tools/parity_upstream.py setup/upstream/table, tools/parity_forward_worker.py):
the parts that run without the official code (fakes stand in for the checkouts and the run folders)."""

import argparse
import collections
import json
import os

import pytest
import yaml

dassl = pytest.importorskip("dassl")

from dassl.data.datasets import Datum  # noqa: E402

from clipprompt.data.fewshot import write_coop_cache  # noqa: E402
from conftest import REPO, run_cli  # noqa: E402
from tools import parity_upstream as tool  # noqa: E402

DASSL_SRC = os.path.dirname(os.path.dirname(dassl.__file__))
PUBLISHED = {  # trainer: (published config, its mini_published counterpart)
    "KgCoOp": ("vit_b16_c4_ep100_batch128_ctxv1", "mini_published_c4_ep100_batch128_ctxv1"),
    "ProGrad": ("vit_b16_c4_ep100_batch32_ctxv1", "mini_published_c4_ep100_batch32_ctxv1"),
    "MaPLe": ("vit_b16_c2_ep5_batch4_2ctx", "mini_published_c2_ep5_batch4_2ctx"),
    "PromptSRC": ("vit_b16_c2_ep20_batch4_4+4ctx", "mini_published_c2_ep20_batch4_4+4ctx"),
}


def read_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def mini_published(trainer):
    return os.path.join(REPO, "benchmarks", "configs", "trainers", trainer, PUBLISHED[trainer][1] + ".yaml")


# ----- the configs: the published settings on the mini CLIP (tests/test_published_mini_configs.py checks them) ---

@pytest.mark.parametrize("trainer", sorted(PUBLISHED))
def test_official_config_keeps_every_section_and_renames_the_trainer_keys(trainer):
    ours = read_yaml(mini_published(trainer))
    official = tool.official_config(trainer, ours)
    assert {k: v for k, v in official.items() if k not in ("TRAINER", "LOSS")} == \
        {k: v for k, v in ours.items() if k != "TRAINER"}
    section = ours["TRAINER"][tool.OFFICIAL_KEYS[trainer][0]]
    if trainer == "KgCoOp":
        assert official["TRAINER"] == {"COOP": {"CTX_INIT": True, "N_CTX": 4, "CSC": False, "CLASS_TOKEN_POSITION": "end",
                                                "PREC": "fp32", "W": 8.0}, "COCOOP": {"PREC": "fp32"}}
    elif trainer == "ProGrad":
        assert official["TRAINER"] == {"COOP": {"CTX_INIT": True, "N_CTX": 4, "CSC": False,
                                                "CLASS_TOKEN_POSITION": "end", "PREC": "fp32"}}
        assert official["LOSS"] == {"NAME": "prograd", "LAMBDA": 1.0, "T": 1.0}
    elif trainer == "MaPLe":
        assert official["TRAINER"] == {"MAPLE": section}
    else:
        expected = {k: v for k, v in section.items() if k not in ("GPA", "HAND_TEMPLATES")}
        assert official["TRAINER"] == {"PROMPTSRC": expected}
        # the official train.py declares the weights and GPA's mean and std as int: yacs refuses a float
        for key in ("TEXT_LOSS_WEIGHT", "IMAGE_LOSS_WEIGHT", "GPA_MEAN", "GPA_STD"):
            assert type(official["TRAINER"]["PROMPTSRC"][key]) is int


@pytest.mark.parametrize("trainer, key, value, says", [
    ("KgCoOp", "CTX_INIT", "a photo of the", "can only do 'a photo of a'"),  # the official one hard-codes it
    ("ProGrad", "HAND_TEMPLATES", ["dataset_ensemble"], "can only do ['dataset']"),
    ("PromptSRC", "GPA", False, "can only do True"),
    ("PromptSRC", "GPA_MEAN", 14.5, "is an integer"),
    ("MaPLe", "HAND_TEMPLATES", ["dataset"], "no official MaPLe key"),
])
def test_official_config_refuses_what_the_official_code_cannot_do(trainer, key, value, says):
    ours = read_yaml(mini_published(trainer))
    ours["TRAINER"][tool.OFFICIAL_KEYS[trainer][0]][key] = value
    with pytest.raises(ValueError, match=f"TRAINER.{tool.OFFICIAL_KEYS[trainer][0]}.{key}") as err:
        tool.official_config(trainer, ours)
    assert says in str(err.value)


def test_official_config_of_coop_is_ours_as_it_is():
    ours = read_yaml(os.path.join(REPO, "benchmarks/configs/trainers/CoOp/mini_c4_ep20_batch8_ctxv1.yaml"))
    assert tool.official_config("CoOp", ours) == ours


# ----- setup ----------------------------------------------------------------------------------------------

def fake_clip(path, vision_width=128, text_width=64):
    import torch

    torch.save({"visual.conv1.weight": torch.zeros(vision_width, 3, 8, 8),
                "ln_final.weight": torch.tensor([1.0 + 2 ** -13] * text_width), "steps": torch.tensor([7])}, path)


def fake_benchmark_data(root, folder="fashion_colours", split="split_fashion_colours.json"):
    (root / folder / "images").mkdir(parents=True)
    (root / folder / split).write_text("{}")


def test_setup_patches_dassl_copies_rounds_the_clip_and_links_the_benchmark_per_trainer(tmp_path):
    import torch

    fake_benchmark_data(tmp_path / "data")
    fake_clip(tmp_path / "clip.pt")
    work = tmp_path / "work"
    tool.setup(argparse.Namespace(dassl=DASSL_SRC, dassl_prograd=DASSL_SRC, clip=str(tmp_path / "clip.pt"),
                                  data=str(tmp_path / "data"), work=str(work), benchmark="fashion_colours",
                                  trainers=["KgCoOp", "MaPLe"]))
    for copy in ("Dassl", "Dassl.ProGrad"):
        for relpath, old, new in tool.DASSL_EDITS:
            text = (work / copy / relpath).read_text()
            assert new in text and old not in text.replace(new, "")
    assert tool.DASSL_EDITS[0][1] in open(os.path.join(DASSL_SRC, tool.DASSL_EDITS[0][0])).read()  # untouched
    rounded = torch.load(work / "clip.pt", weights_only=True)
    assert rounded["ln_final.weight"][0].item() == 1.0 and rounded["steps"].tolist() == [7]  # fp16 rounding only
    for trainer in ("KgCoOp", "MaPLe"):  # one folder each: each repository writes its own few-shot cache
        pets = work / "data_upstream" / trainer / "oxford_pets"
        assert os.path.samefile(pets / "images", tmp_path / "data" / "fashion_colours" / "images")
        assert os.path.samefile(pets / "split_zhou_OxfordPets.json",
                                tmp_path / "data" / "fashion_colours" / "split_fashion_colours.json")
    assert not (work / "data_upstream" / "CoOp").exists()
    assert json.loads((work / "benchmark.json").read_text()) == {
        "benchmark": "fashion_colours", "dataset": "FashionColours", "dataset_dir": "fashion_colours",
        "template": "a photo of a {}.", "vision_width": 128, "text_width": 64}


def test_setup_asks_for_the_dassl_fork_that_kgcoop_and_prograd_run_on(tmp_path):
    fake_benchmark_data(tmp_path / "data", "fashion_mnist", "split_fashion_mnist.json")
    fake_clip(tmp_path / "clip.pt")
    proc = run_cli(["-m", "tools.parity_upstream", "setup", "--dassl", DASSL_SRC, "--clip", str(tmp_path / "clip.pt"),
                    "--data", str(tmp_path / "data"), "--work", str(tmp_path / "work"), "--trainers", "ProGrad"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --dassl-prograd")


# ----- upstream: the official train.py, unmodified, after the shims ------------------------------------------

FAKE_TRAIN_PY = """import sys, yaml, torch, dassl, trainers
from clip import clip
from trainers import kgcoop
config = yaml.safe_load(open(sys.argv[sys.argv.index("--config-file") + 1]))
print(__import__("json").dumps({
    "dassl": dassl.__file__, "trainers": trainers.__file__, "template": kgcoop.CUSTOM_TEMPLATES["OxfordPets"],
    "download": clip._download(clip._MODELS["ViT-B/16"]), "half": str(torch.ones(1).half().dtype),
    "config": config["TRAINER"], "argv": sys.argv[1:], "name": __name__}))
"""


def fake_kgcoop_checkout(folder):
    """A stand-in for htyao89/KgCoOp: KgCoOp/{train.py, trainers/kgcoop.py, clip/clip.py}."""
    code = folder / "KgCoOp"
    (code / "trainers").mkdir(parents=True)
    (code / "clip").mkdir()
    (code / "trainers" / "__init__.py").write_text("")
    (code / "trainers" / "kgcoop.py").write_text(
        "class TrainerX: pass\nclass KgCoOp(TrainerX): pass\n"
        "CUSTOM_TEMPLATES = {'OxfordPets': 'a photo of a {}, a type of pet.'}\n")
    (code / "clip" / "__init__.py").write_text("")
    (code / "clip" / "clip.py").write_text(
        "_MODELS = {'ViT-B/16': 'https://example.invalid/ViT-B-16.pt'}\n"
        "def _download(url, root=None):\n    raise RuntimeError('no internet')\n")
    (code / "train.py").write_text(FAKE_TRAIN_PY)
    return folder


def test_upstream_runs_the_official_train_py_after_the_shims_with_the_translated_config(tmp_path):
    fake_benchmark_data(tmp_path / "data", "fashion_mnist", "split_fashion_mnist.json")
    fake_clip(tmp_path / "clip.pt")
    work = tmp_path / "work"
    tool.setup(argparse.Namespace(dassl=DASSL_SRC, dassl_prograd=DASSL_SRC, clip=str(tmp_path / "clip.pt"),
                                  data=str(tmp_path / "data"), work=str(work), benchmark="fashion10",
                                  trainers=["KgCoOp"]))
    checkout = fake_kgcoop_checkout(tmp_path / "kgcoop")
    before = {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()}
    proc = run_cli(["-m", "tools.parity_upstream", "upstream", "--trainer", "KgCoOp", "--code", str(checkout),
                    "--work", str(work), "--", "--seed", "1", "--config-file", mini_published("KgCoOp")])
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[0])
    assert seen["dassl"] == str(work / "Dassl.ProGrad" / "dassl" / "__init__.py")  # the patched fork
    assert seen["trainers"] == str(checkout / "KgCoOp" / "trainers" / "__init__.py")  # official, not ours
    assert seen["template"] == "a photo of a {}."  # the benchmark's, not the pets one
    assert seen["download"] == str(work / "clip.pt") and seen["half"] == "torch.float32"
    assert seen["name"] == "__main__" and seen["argv"][:2] == ["--seed", "1"]
    assert seen["argv"][3] == str(work / "official_configs" / "KgCoOp" / os.path.basename(mini_published("KgCoOp")))
    assert seen["config"]["COOP"]["W"] == 8.0 and seen["config"]["COOP"]["CTX_INIT"] is True
    # every shim that acted is in the log
    assert "parity shim: trainers.kgcoop.CUSTOM_TEMPLATES['OxfordPets'] = 'a photo of a {}.' x1" in proc.stdout
    assert any(line.startswith("parity shim: Tensor.half at train.py:") for line in proc.stdout.splitlines())
    # the checkout is left as it was (no edits, no bytecode)
    assert {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()} == before


def test_upstream_refuses_a_folder_that_is_not_the_official_checkout(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "benchmark.json").write_text("{}")
    proc = run_cli(["-m", "tools.parity_upstream", "upstream", "--trainer", "MaPLe", "--code", str(tmp_path),
                    "--work", str(tmp_path / "work"), "--", "--seed", "1"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: --code {tmp_path} is not a checkout of muzairkhattak/multimodal-prompt-learning")


def test_maple_widths_are_the_clips_in_the_maple_module_only():
    import types

    import torch

    from tools.parity_forward_worker import widen_maple

    module = types.SimpleNamespace(nn=torch.nn, torch=torch)
    counts = collections.Counter()
    widen_maple(module, vision_width=128, text_width=64, counts=counts)
    assert module.nn.Linear(64, 768).out_features == 128
    assert module.nn.Linear(64, 10).out_features == 10  # other layers as written
    assert module.torch.empty(2, 512).shape == (2, 64) and module.torch.empty((3, 512)).shape == (3, 64)
    assert module.torch.empty(2, 7).shape == (2, 7) and module.nn.Module is torch.nn.Module
    assert torch.nn.Linear(64, 768).out_features == 768  # torch itself is untouched
    assert sorted(counts.values()) == [1, 2]


# ----- table -------------------------------------------------------------------------------------------------

def write_cache(path, image_root, names):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.makedirs(f"{image_root}/images", exist_ok=True)
    for name in names:  # Dassl's Datum wants the file to exist
        open(f"{image_root}/images/{name}", "w").close()
    train = [Datum(impath=f"{image_root}/images/{name}", label=i, classname=f"c{i}") for i, name in enumerate(names)]
    write_coop_cache(str(path), train, train[:1])


def test_table_puts_both_sides_per_seed_side_by_side_and_checks_the_few_shot_files(tmp_path, capsys):
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    (work / "benchmark.json").write_text(json.dumps({"dataset_dir": "fashion_mnist"}))
    accuracy = {  # seed: (base ours, base official, new ours, new official)
        1: (80.0, 80.0, 70.0, 70.0), 2: (82.0, 81.0, 71.0, 72.5), 3: (79.0, 79.5, 69.0, 69.0)}
    for seed, (bo, bu, no, nu) in accuracy.items():
        for sub, ours_acc, official_acc in (("train_base", bo, bu), ("test_new", no, nu)):
            run = tmp_path / "ours" / sub / "MaPLe" / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "results.json").write_text(json.dumps({"accuracy": ours_acc}))
            run = tmp_path / "official" / sub / "MaPLe" / f"seed{seed}"
            run.mkdir(parents=True)
            total = 2000
            (run / "log.txt").write_text(f"=> result\n* total: {total:,}\n* correct: {round(official_acc * 20):,}\n")
        cache = f"split_fewshot/shot_16-seed_{seed}.pkl"
        write_cache(data / "fashion_mnist" / cache, data / "fashion_mnist", ["a.png", "b.png"])
        official = ["a.png", "b.png"] if seed != 3 else ["b.png", "a.png"]  # seed 3: another order
        write_cache(work / "data_upstream" / "MaPLe" / "oxford_pets" / cache, tmp_path / "x" / "oxford_pets",
                    official)
    tool.table(argparse.Namespace(ours=str(tmp_path / "ours"), upstream=str(tmp_path / "official"),
                                  ours_data=str(data), work=str(work), trainers=["MaPLe"], seeds=[1, 2, 3, 4],
                                  shots=16))
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[2] == "| MaPLe | 1 | yes | 80.00 | 80.00 | +0.00 | 70.00 | 70.00 | +0.00 |"
    assert rows[3] == "| MaPLe | 2 | yes | 82.00 | 81.00 | +1.00 | 71.00 | 72.50 | -1.50 |"
    assert rows[4] == "| MaPLe | 3 | NO | 79.00 | 79.50 | -0.50 | 69.00 | 69.00 | +0.00 |"
    assert rows[5] == "| MaPLe | 4 | - | - | - | - | - | - | - |"  # not run
    # the means, and the mean paired difference with its 95% t-interval
    assert rows[6].startswith("| MaPLe | mean of 3 | | 80.33 | 80.17 | +0.17 [")
    assert "| 70.00 | 70.50 | -0.50 [" in rows[6] and len(rows) == 7


def test_official_accuracy_is_read_from_the_last_evaluation_of_the_log(tmp_path):
    (tmp_path / "log.txt").write_text(
        "=> result\n* total: 2,000\n* correct: 1,000\n* accuracy: 50.0%\n"
        "=> result\n* total: 2,000\n* correct: 1,717\n* accuracy: 85.8%\n"
    )
    assert tool.upstream_accuracy(str(tmp_path)) == pytest.approx(85.85)
    assert tool.upstream_accuracy(str(tmp_path / "missing")) is None


def test_upstream_redirects_the_download_of_the_backbone_the_config_names_even_none(tmp_path):
    """The mini CoOp configs name no backbone: the official load_clip_to_cpu looks up clip._MODELS[""]."""
    fake_benchmark_data(tmp_path / "data", "fashion_mnist", "split_fashion_mnist.json")
    fake_clip(tmp_path / "clip.pt")
    work = tmp_path / "work"
    tool.setup(argparse.Namespace(dassl=DASSL_SRC, dassl_prograd=None, clip=str(tmp_path / "clip.pt"),
                                  data=str(tmp_path / "data"), work=str(work), benchmark="fashion10", trainers=["CoOp"]))
    code = tmp_path / "coop"
    for folder in ("trainers", "clip"):
        (code / folder).mkdir(parents=True)
        (code / folder / "__init__.py").write_text("")
    (code / "trainers" / "coop.py").write_text("class TrainerX: pass\nclass CoOp(TrainerX): pass\n")
    (code / "clip" / "clip.py").write_text("_MODELS = {}\ndef _download(url, root=None):\n    raise RuntimeError\n")
    (code / "train.py").write_text("from clip import clip\nprint(clip._download(clip._MODELS['']))\n")
    proc = run_cli(["-m", "tools.parity_upstream", "upstream", "--trainer", "CoOp", "--code", str(code), "--work",
                    str(work), "--", "--config-file", "benchmarks/configs/trainers/CoOp/mini_c4_ep20_batch8_ctxv1.yaml"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(work / "clip.pt")
