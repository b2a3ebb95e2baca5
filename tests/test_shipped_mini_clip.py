"""The shipped, sha256-pinned mini CLIPs (benchmarks/mini_clip/shipped.py) that the CPU benchmarks run on by default."""

import json
import shutil

import pytest
import torch

from benchmarks.mini_clip import shipped as shipped_module
from benchmarks.mini_clip.recipe import check_existing, make_recipe, report_path
from benchmarks.mini_clip.shipped import SHIPPED, sha256_of, shipped
from clipprompt.errors import UserError
from conftest import run_cli


@pytest.mark.parametrize("bench", sorted(SHIPPED))  # not "benchmark": pytest-benchmark's fixture
def test_each_shipped_file_is_the_pinned_one_and_of_its_benchmarks_recipe(bench):
    entry = shipped(bench)
    assert sha256_of(entry.path) == entry.sha256 and len(entry.short) == 12
    with open(report_path(entry.path)) as f:
        report = json.load(f)
    assert report["recipe"] == json.loads(json.dumps(make_recipe(bench).__dict__))
    check_existing(entry.path, make_recipe(bench))  # what mini_benchmark.sh asks before reusing it


@pytest.mark.parametrize("bench", sorted(SHIPPED))  # not "benchmark": pytest-benchmark's fixture
def test_a_shipped_checkpoint_is_fp16_and_loads_as_the_recipes_clip(bench):
    from clipprompt.clip.loader import load_clip

    entry = shipped(bench)
    state = torch.load(entry.path, map_location="cpu")
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    recipe = make_recipe(bench)
    model = load_clip("ViT-B/16", path=entry.path, precision="fp32")
    assert model.visual.input_resolution == recipe.image_resolution
    assert len(model.visual.transformer.resblocks) == recipe.vision_layers
    assert len(model.transformer.resblocks) == recipe.text_layers
    images = torch.randn(2, 3, recipe.image_resolution, recipe.image_resolution)
    with torch.no_grad():
        features = model.encode_image(images)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()


def _copy_shipped(tmp_path, monkeypatch, benchmark="fashion10"):
    entry = SHIPPED[benchmark]
    shutil.copy(entry.path, tmp_path / entry.file)
    monkeypatch.setattr(shipped_module, "CHECKPOINT_DIR", str(tmp_path))
    return tmp_path / entry.file


def test_a_changed_shipped_file_is_refused_with_one_line(tmp_path, monkeypatch):
    copy = _copy_shipped(tmp_path, monkeypatch)
    assert shipped("fashion10").path == str(copy)  # the copy itself passes
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"sha256 \w{12}\.\.\. is not the pinned 4eca786f1d7a\.\.\..*REBUILD=1"):
        shipped("fashion10")
    # what Git LFS leaves when the objects were not pulled
    copy.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    with pytest.raises(UserError, match="Git-LFS-pointer"):
        shipped("fashion10")


def test_a_missing_shipped_file_or_benchmark_names_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped_module, "CHECKPOINT_DIR", str(tmp_path))
    with pytest.raises(UserError, match=r"fashion10-v1\.fp16\.pt: the shipped mini CLIP of fashion10 is missing; restore"):
        shipped("fashion10")
    with pytest.raises(UserError, match="no shipped mini CLIP for benchmark 'cifar'.*CLIP_CKPT"):
        shipped("cifar")


def test_the_command_line_prints_the_verified_path_or_one_error_line():
    proc = run_cli(["-m", "benchmarks.mini_clip.shipped", "fashion10", "--sha"])
    assert proc.returncode == 0 and proc.stdout.strip() == SHIPPED["fashion10"].short
    bad = run_cli(["-m", "benchmarks.mini_clip.shipped", "fashion_mnist"])
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
