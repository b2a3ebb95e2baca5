"""tools/export_open_clip.py: an OpenAI-layout CLIP exported as an open_clip model config (and weights)
loads through MODEL.BACKBONE.NAME open_clip:<config>.json and gives OpenAI's zero-shot logits;
bad inputs are one line and nothing existing is replaced."""

import json

import pytest
import torch

from clipprompt.clip.backbone import as_backbone
from clipprompt.clip.loader import export_open_clip, load_clip
from clipprompt.errors import UserError
from clipprompt.methods.zeroshot import ZeroShotCLIP
from conftest import TINY_RESOLUTION, build_tiny_clip, run_cli
from helpers import user_error

pytest.importorskip("open_clip", reason='open_clip_torch is not installed (pip install -e ".[open_clip]")')

NAMES = ["dog", "sea lion", "golden retriever", "car"]
TOL = dict(rtol=0, atol=1e-5)


def zero_shot_logits(clip_model, seed=0):
    image = torch.randn(5, 3, TINY_RESOLUTION, TINY_RESOLUTION, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return ZeroShotCLIP(clip_model, NAMES, ["a photo of a {}."])(image)


@pytest.fixture()
def openai_checkpoint(tmp_path):
    """Two layers and 128 wide (two heads), so that layer and head counts are really inferred."""
    path = tmp_path / "openai_tiny.pt"
    torch.save(build_tiny_clip(seed=9, embed_dim=96, width=128, layers=2).state_dict(), path)
    return str(path)


@pytest.mark.parametrize("weights_ext", ["", ".safetensors", ".pt"])
def test_exported_model_gives_openai_zero_shot_logits(tmp_path, openai_checkpoint, weights_ext):
    config_file = str(tmp_path / "tiny-openai-export.json")
    weights = str(tmp_path / f"weights{weights_ext}") if weights_ext else ""
    proc = run_cli(["-m", "tools.export_open_clip", openai_checkpoint, "--config", config_file,
                    *(["--weights", weights] if weights else [])])
    assert proc.returncode == 0, proc.stderr
    config = json.loads(open(config_file).read())
    assert config == {"embed_dim": 96, "quick_gelu": True,
                      "vision_cfg": {"image_size": TINY_RESOLUTION, "layers": 2, "width": 128, "patch_size": 16},
                      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2}}
    openai_model = load_clip("ViT-B/16", openai_checkpoint)
    exported = load_clip(f"open_clip:{config_file}", weights or openai_checkpoint)
    assert as_backbone(exported).kind == "open_clip"
    reference = zero_shot_logits(openai_model)
    torch.testing.assert_close(zero_shot_logits(exported), reference, **TOL)
    assert reference.std() > 0.1  # the classes really differ
    if weights:  # open_clip's own layout: every key of its model, nothing else
        state = load_clip(f"open_clip:{config_file}", weights).state_dict()
        assert set(state) == set(exported.state_dict())


def test_resnet_checkpoint_config_is_inferred(tmp_path):
    from clip.model import CLIP

    torch.manual_seed(0)
    resnet = CLIP(embed_dim=64, image_resolution=64, vision_layers=(1, 2, 1, 1), vision_width=64, vision_patch_size=None,
                  context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=1)
    path = tmp_path / "rn.pt"
    torch.save(resnet.float().state_dict(), path)
    config = export_open_clip(str(path), str(tmp_path / "tiny-rn.json"))
    assert config["vision_cfg"] == {"image_size": 64, "layers": [1, 2, 1, 1], "width": 64, "patch_size": None}
    same = load_clip(f"open_clip:{tmp_path / 'tiny-rn.json'}", str(path)).state_dict()
    assert all(torch.equal(same[k], v) for k, v in resnet.float().state_dict().items())


def test_image_mean_and_std_are_kept_and_followed(tmp_path, openai_checkpoint):
    config_file = str(tmp_path / "tiny-own-norm.json")
    export_open_clip(openai_checkpoint, config_file, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.2, 0.2])
    backbone = as_backbone(load_clip(f"open_clip:{config_file}", openai_checkpoint))
    assert list(backbone.pixel_mean) == [0.5, 0.4, 0.3] and list(backbone.pixel_std) == [0.2, 0.2, 0.2]


def test_existing_outputs_are_not_overwritten(tmp_path, openai_checkpoint):
    config_file, weights = tmp_path / "tiny-keep.json", tmp_path / "keep.safetensors"
    config_file.write_text("mine")
    proc = run_cli(["-m", "tools.export_open_clip", openai_checkpoint, "--config", str(config_file), "--weights", str(weights)])
    assert user_error(proc) == f"error: {config_file} already exists; pass --overwrite to replace it or choose another name"
    assert config_file.read_text() == "mine" and not weights.exists()
    weights.write_bytes(b"also mine")
    with pytest.raises(UserError, match="keep.safetensors already exists"):
        export_open_clip(openai_checkpoint, str(tmp_path / "tiny-new.json"), str(weights))
    assert weights.read_bytes() == b"also mine" and not (tmp_path / "tiny-new.json").exists()
    export_open_clip(openai_checkpoint, str(config_file), str(weights), overwrite=True)
    assert json.loads(config_file.read_text())["quick_gelu"] is True


@pytest.mark.parametrize("problem", ["missing", "not_clip", "not_torch"])
def test_bad_checkpoint_is_one_line(tmp_path, problem):
    path = tmp_path / "model.pt"
    if problem == "not_clip":
        torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    elif problem == "not_torch":
        path.write_text("hello")
    proc = run_cli(["-m", "tools.export_open_clip", str(path), "--config", str(tmp_path / "out.json")])
    user_error(proc, str(path))
    assert not (tmp_path / "out.json").exists()
