import os
import stat
import sys

from clipprompt.errors import UserError, exit_status
from conftest import requires_dassl, run_cli


def test_exit_status_turns_user_errors_into_one_line_and_status_2(capsys):
    def bad():
        raise UserError("split file not found: /x.json (see docs/datasets.md)")

    assert exit_status(bad) == 2
    assert capsys.readouterr().err == "error: split file not found: /x.json (see docs/datasets.md)\n"
    assert exit_status(lambda: None) == 0
    assert exit_status(lambda: 1) == 1
    assert exit_status(lambda: {"report": 1}) == 0  # a returned report is not a status


def test_scripts_name_an_unknown_trainer_and_list_the_known_ones():
    proc = run_cli(["bash", "scripts/base2new_train.sh", "oxford_pets", "1"], env_extra={"TRAINER": "Foo"})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown TRAINER=Foo; known trainers: ")
    known = proc.stderr.split("known trainers: ")[1].split(" (")[0].split()
    assert {"CoOp", "CoCoOp", "DualPromptMI", "ZeroshotCLIP"} <= set(known)
    assert "no default CFG" not in proc.stderr
    proc = run_cli(["bash", "scripts/fewshot_train.sh", "oxford_pets", "1"], env_extra={"TRAINER": "CoOp", "CFG": "nope"})
    assert proc.returncode == 2 and "unknown CFG=nope for TRAINER=CoOp; known: " in proc.stderr and "vit_b16_ep50" in proc.stderr


def test_scripts_use_launch_and_config_root(tmp_path):
    """LAUNCH starts train.py; the config comes from $CONFIG_ROOT/$TRAINER/$CFG.yaml; RESUME=1 continues."""
    root = tmp_path / "benchmarks" / "Mine"
    root.mkdir(parents=True)
    (root / "tiny.yaml").write_text("OPTIM:\n  MAX_EPOCH: 1\n")
    record = tmp_path / "argv.txt"
    launcher = tmp_path / "launcher.sh"
    launcher.write_text(f"#!/bin/sh\necho \"$@\" >> {record}\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    env = {"TRAINER": "Mine", "CFG": "tiny", "CONFIG_ROOT": str(tmp_path / "benchmarks"), "OUTPUT": str(tmp_path / "out"),
           "LAUNCH": f"{launcher} --nproc_per_node 2", "PYTHON": sys.executable}
    proc = run_cli(["bash", "scripts/base2new_train.sh", "oxford_pets", "3"], env_extra=env)
    assert proc.returncode == 0, proc.stderr
    argv = record.read_text().split()
    assert argv[:3] == ["--nproc_per_node", "2", "train.py"]
    assert argv[argv.index("--config-file") + 1] == str(root / "tiny.yaml")
    run_dir = argv[argv.index("--output-dir") + 1]
    assert "--resume" not in argv and "--overwrite" not in argv
    # an unfinished run: RESUME=1 continues from its last checkpoint, or restarts (old folder kept aside)
    os.makedirs(os.path.join(run_dir, "prompt_learner"))
    for expected in ("--overwrite", "--resume"):
        record.unlink()
        proc = run_cli(["bash", "scripts/base2new_train.sh", "oxford_pets", "3"], env_extra={**env, "RESUME": "1"})
        assert proc.returncode == 0, proc.stderr
        argv = record.read_text().split()
        assert expected in argv
        if expected == "--resume":
            assert argv[argv.index("--resume") + 1] == run_dir
        open(os.path.join(run_dir, "prompt_learner", "model.pth.tar-1"), "w").close()


# ----- a YAML syntax error: one line naming the file and line ---------------------------

BROKEN_YAML = "OPTIM:\n  LR: 0.002\n  MAX_EPOCH: [5\n  WARMUP_EPOCH: 1\n"  # the list is never closed


def test_describe_yaml_error_names_the_file_and_the_line(tmp_path):
    import pytest
    import yaml

    from clipprompt.runtime.yamlfile import describe_yaml_error, yaml_errors_as_user_errors

    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: c: d\n")
    with pytest.raises(yaml.YAMLError) as info:
        yaml.safe_load(path.read_text())
    assert describe_yaml_error(path, info.value) == f"{path}, line 2: mapping values are not allowed here"
    with pytest.raises(UserError, match=rf"^{path}, line 2: mapping values"):
        with yaml_errors_as_user_errors(path):
            yaml.safe_load(path.read_text())


@requires_dassl
def test_train_py_reports_a_yaml_syntax_error_in_either_config_file(tmp_path, capsys):
    import train

    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_YAML)
    for flag, other in (("--config-file", "--dataset-config-file"), ("--dataset-config-file", "--config-file")):
        good = "configs/datasets/oxford_pets.yaml" if other == "--dataset-config-file" else "configs/trainers/CoOp/vit_b16.yaml"
        argv = ["--trainer", "CoOp", flag, str(broken), other, good, "--output-dir", str(tmp_path / "out")]
        assert exit_status(lambda: train.main(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {broken}, line 4: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
