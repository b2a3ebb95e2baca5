"""clipprompt/runtime/files.py: atomic writes and moving a run folder aside."""

import json
import os
import stat

import pytest
import torch

from clipprompt.runtime import files
from clipprompt.runtime.files import move_aside, torch_save_atomic, write_bytes_atomic, write_json_atomic, write_text_atomic


def entries(folder):
    return sorted(os.listdir(folder))


@pytest.fixture()
def umask():
    """Sets the process umask for one test and restores it."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def test_writes_replace_the_content_and_leave_only_the_file(tmp_path):
    path = tmp_path / "sub" / "results.json"  # the folder is made
    write_json_atomic(path, {"accuracy": 1.5}, indent=2)
    assert json.loads(path.read_text()) == {"accuracy": 1.5} and path.read_text().startswith("{\n  ")
    write_text_atomic(path, "naïve\n")
    assert path.read_text(encoding="utf-8") == "naïve\n"
    write_bytes_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert entries(path.parent) == ["results.json"]


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"old": True})
    with pytest.raises(TypeError):  # fails while writing: text into the binary temporary file
        write_bytes_atomic(path, "not bytes")
    assert json.loads(path.read_text()) == {"old": True} and entries(tmp_path) == ["results.json"]

    def no_replace(src, dst):  # fails at the last step, after the temporary file is complete
        raise OSError("disk gone")

    monkeypatch.setattr(files.os, "replace", no_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_json_atomic(path, {"new": True})
    with pytest.raises(OSError, match="disk gone"):
        torch_save_atomic({"w": torch.ones(2)}, tmp_path / "model.pth.tar-1")
    assert json.loads(path.read_text()) == {"old": True} and entries(tmp_path) == ["results.json"]


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_text_atomic(path, "old")

    def interrupted(fd, mode):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "chmod", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and entries(tmp_path) == ["results.json"]


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_permissions_follow_the_umask_like_a_plain_open(tmp_path, umask, mask):
    umask(mask)
    atomic, plain = tmp_path / "atomic.json", tmp_path / "plain.json"
    write_json_atomic(atomic, {})
    torch_save_atomic({}, tmp_path / "atomic.pt")
    plain.write_text("{}")
    expected = 0o666 & ~mask
    assert stat.S_IMODE(plain.stat().st_mode) == expected  # what "a plain open" means here
    assert stat.S_IMODE(atomic.stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "atomic.pt").stat().st_mode) == expected
    assert os.umask(mask) == mask  # reading the umask did not change it


def test_torch_save_atomic_round_trips(tmp_path):
    state = {"state_dict": {"ctx": torch.randn(4, 8), "count": torch.arange(3)}, "epoch": 2}
    path = tmp_path / "prompt_learner" / "model.pth.tar-2"
    torch_save_atomic(state, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 2 and loaded["state_dict"].keys() == state["state_dict"].keys()
    for key, value in state["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], value)
    assert entries(path.parent) == ["model.pth.tar-2"]


def test_move_aside_never_replaces_an_earlier_aside_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(files.time, "strftime", lambda fmt: "20260101-120000")  # every move in the same second
    run = tmp_path / "seed1"
    asides = []
    for attempt in range(3):
        run.mkdir()
        (run / "log.txt").write_text(f"attempt {attempt}")
        asides.append(move_aside(str(run) + os.sep))  # a trailing separator names the same folder
        assert not run.exists()
    assert asides == [f"{run}.old-20260101-120000", f"{run}.old-20260101-120000-2", f"{run}.old-20260101-120000-3"]
    for attempt, aside in enumerate(asides):
        with open(os.path.join(aside, "log.txt")) as f:
            assert f.read() == f"attempt {attempt}"  # nothing was overwritten or deleted


def test_move_aside_names_the_time(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    aside = move_aside(run)
    assert os.path.isdir(aside) and not run.exists()
    stamp = aside.rsplit(".old-", 1)[1]
    assert len(stamp) == len("YYYYmmdd-HHMMSS") and stamp[8] == "-" and stamp.replace("-", "").isdigit()
