"""The protocol scripts' run folders (RUN_DIR_ONLY=1) and the trainer list, without Dassl unless marked."""

import json
import os
import subprocess
import sys

import pytest
import yaml

import train
from conftest import REPO, requires_dassl, run_cli, write_fake_python

PROTOCOL_SCRIPTS = (("base2new_train.sh", True), ("base2new_test.sh", True), ("fewshot_train.sh", True),
                    ("xd_train.sh", False), ("xd_test.sh", True))  # (script, takes a dataset argument)


def run_dir(script, *args, env=None):
    """The folder ``script`` would write, as tools/gridlib.py asks for it; the CompletedProcess on failure."""
    argv = ["bash", f"scripts/{script}", *args]
    proc = run_cli(argv, env_extra={"RUN_DIR_ONLY": "1", **(env or {})})
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else proc


def dataset_args(script, dataset, seed="1"):
    return (dataset, seed) if dict(PROTOCOL_SCRIPTS)[script] else (seed,)


# ----- every trainer, everywhere it is named ----------------------------------------------

@pytest.mark.parametrize("trainer", train.TRAINER_NAMES)
def test_every_trainer_runs_through_every_protocol_script(trainer, tmp_path):
    for script, _ in PROTOCOL_SCRIPTS:
        folder = run_dir(script, *dataset_args(script, "oxford_pets"),
                         env={"TRAINER": trainer, "SOURCE": "oxford_pets", "OUTPUT": str(tmp_path)})
        assert isinstance(folder, str), f"{script}: {folder.stderr}"
        assert f"/{trainer}/" in folder and folder.startswith(str(tmp_path))


def test_zeroshotclip2_config_is_zeroshotclip_with_the_ensemble():
    def load(path):
        with open(os.path.join(REPO, "configs", "trainers", path)) as f:
            return yaml.safe_load(f)

    assert load("ZeroshotCLIP2/vit_b16.yaml") == load("ZeroshotCLIP/vit_b16_ensemble.yaml")


def test_help_and_setup_description_name_every_trainer():
    help_text = " ".join(train.build_parser().format_help().split())
    assert f"trainer name ({', '.join(train.TRAINER_NAMES)})" in help_text
    proc = subprocess.run([sys.executable, "setup.py", "--description"], cwd=REPO, capture_output=True, text=True)
    description = proc.stdout.strip().splitlines()[-1]
    named = {word.strip("(),") for word in description.split()}
    assert set(train.TRAINER_NAMES) <= named, description


@requires_dassl
def test_trainer_names_are_the_registered_trainers():
    from dassl.engine import TRAINER_REGISTRY

    import trainers  # noqa: F401  (registers them)

    from trainers.base import PromptTrainer

    ours = {name for name, cls in TRAINER_REGISTRY._obj_map.items() if issubclass(cls, PromptTrainer)}
    assert ours == set(train.TRAINER_NAMES)


# ----- CustomDataset: one run folder per split file ---------------------------------------

def write_split(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"train": [["a.png", 0, "a"]], "test": [["b.png", 0, "a"]]}))
    return str(path)


def test_each_custom_split_file_gets_its_own_run_folder(tmp_path):
    data = tmp_path / "data"
    split_a, split_b = write_split(data / "flowers" / "split.json"), write_split(data / "birds" / "split.json")
    env = {"DATA": str(data), "OUTPUT": str(tmp_path / "out"), "SOURCE": "custom"}
    for script, _ in PROTOCOL_SCRIPTS:
        env_script = {**env, "SOURCE_SPLIT_FILE": split_a} if script == "xd_test.sh" else env
        folders = [run_dir(script, *dataset_args(script, "custom"), "DATASET.CUSTOM.SPLIT_FILE", split,
                           "DATASET.CUSTOM.IMAGE_DIR", "images", env=env_script) for split in (split_a, split_b)]
        assert all(isinstance(f, str) for f in folders), [f.stderr for f in folders if not isinstance(f, str)]
        assert folders[0] != folders[1], script
        assert all("/custom_split_" in folder for folder in folders), folders
        # the same file given relative to DATA (as train.py reads it) is the same run
        relative = run_dir(script, *dataset_args(script, "custom"), "DATASET.CUSTOM.SPLIT_FILE", "flowers/split.json",
                           "DATASET.CUSTOM.IMAGE_DIR", "images", env=env_script)
        assert relative == folders[0], script
    # base2new_test.sh loads the model its train step wrote
    train_dir = run_dir("base2new_train.sh", "custom", "1", "DATASET.CUSTOM.SPLIT_FILE", split_b, env=env)
    test_dir = run_dir("base2new_test.sh", "custom", "1", "DATASET.CUSTOM.SPLIT_FILE", split_b, env=env)
    assert train_dir.replace("/train_base/", "/test_new/") == test_dir


def test_a_custom_run_without_its_split_file_is_refused_in_one_line(tmp_path):
    proc = run_dir("base2new_train.sh", "custom", "1", env={"OUTPUT": str(tmp_path)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: dataset custom reads its split file from DATASET.CUSTOM.SPLIT_FILE")
    proc = run_dir("xd_test.sh", "oxford_pets", "1", env={"OUTPUT": str(tmp_path), "SOURCE": "custom"})
    assert proc.returncode == 2 and "SOURCE_SPLIT_FILE" in proc.stderr and proc.stderr.count("\n") == 1


# Stands in for train.py: writes results.json into its --output-dir, as a finished run does.
FAKE_TRAIN = r'''
import json, os, sys
args = sys.argv[2:]
out = args[args.index("--output-dir") + 1]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({"split_file": args[args.index("DATASET.CUSTOM.SPLIT_FILE") + 1]}, f)
print("fake run finished")
'''


def test_a_second_split_file_is_run_not_taken_from_the_first(tmp_path):
    data = tmp_path / "data"
    splits = [write_split(data / name / "split.json") for name in ("flowers", "birds")]
    env = {"DATA": str(data), "OUTPUT": str(tmp_path / "out"), "PYTHON": str(write_fake_python(tmp_path, FAKE_TRAIN))}
    for split in splits:
        proc = run_cli(["bash", "scripts/fewshot_train.sh", "custom", "1", "DATASET.CUSTOM.SPLIT_FILE", split], env_extra=env)
        assert proc.returncode == 0, proc.stderr
        assert "fake run finished" in proc.stdout and "Results exist" not in proc.stdout
        folder = run_dir("fewshot_train.sh", "custom", "1", "DATASET.CUSTOM.SPLIT_FILE", split, env=env)
        with open(os.path.join(folder, "results.json")) as f:
            assert json.load(f)["split_file"] == split
    proc = run_cli(["bash", "scripts/fewshot_train.sh", "custom", "1", "DATASET.CUSTOM.SPLIT_FILE", splits[0]], env_extra=env)
    assert "Results exist" in proc.stdout  # a finished run of the same split is still skipped


# ----- scripts/install_dassl.sh ------------------------------------------------------------

def test_install_dassl_without_a_reachable_repository_says_to_set_dassl_src(tmp_path):
    # a clone that fails (no internet; here a repository path that does not exist) ends in one
    # error line naming the offline way, not git's bare "fatal:"
    proc = run_cli(["bash", "scripts/install_dassl.sh"],
                   env_extra={"DASSL_REPO": str(tmp_path / "no_repository_here"), "DASSL_SRC": ""})
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "DASSL_SRC" in errors[0] and "no_repository_here" in errors[0]
