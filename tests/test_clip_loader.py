import warnings

import pytest
import torch

from clipprompt.clip.loader import load_clip, read_clip_state_dict
from clipprompt.errors import UserError
from conftest import TINY_RESOLUTION, build_tiny_clip


def test_loads_plain_state_dict_file(tiny_clip_path):
    model = load_clip("ViT-B/16", tiny_clip_path)
    reference = build_tiny_clip()
    assert model.visual.input_resolution == TINY_RESOLUTION
    assert model.dtype == torch.float32
    assert all(not p.requires_grad for p in model.parameters())
    # fp32 weights survive exactly (no round trip through OpenAI's fp16 layout)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_loads_torchscript_archive(tmp_path, tiny_clip_path):
    reference = build_tiny_clip()
    image = torch.randn(1, 3, TINY_RESOLUTION, TINY_RESOLUTION)
    text = torch.zeros(1, 77, dtype=torch.long)
    text[0, :3] = torch.tensor([49406, 320, 49407])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow
        traced = torch.jit.trace(reference, (image, text), check_trace=False)
    path = tmp_path / "clip_jit.pt"
    traced.save(str(path))
    model = load_clip("ViT-B/16", str(path))
    torch.testing.assert_close(model.encode_image(image), reference.encode_image(image))


def test_state_dict_under_state_dict_key(tmp_path):
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": build_tiny_clip().state_dict()}, path)
    assert load_clip("", str(path)).visual.input_resolution == TINY_RESOLUTION


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="MODEL.BACKBONE.PATH"):
        load_clip("ViT-B/16", str(tmp_path / "nope.pt"))


def test_non_clip_file_is_a_user_error(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(torch.nn.Linear(3, 4).state_dict(), path)
    with pytest.raises(UserError, match="not a CLIP checkpoint"):
        load_clip("ViT-B/16", str(path))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        read_clip_state_dict(str(garbage))


def test_unknown_backbone_name_is_a_user_error():
    with pytest.raises(UserError, match="MODEL.BACKBONE.NAME"):
        load_clip("ViT-Z/99")


def test_failed_download_is_a_one_line_user_error(tmp_path, monkeypatch):
    """Offline, a backbone name (no MODEL.BACKBONE.PATH) says how to use a local file instead of a traceback."""
    import urllib.error

    from clip import clip as clip_api

    def offline(url, root):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(clip_api, "_download", offline)
    with pytest.raises(UserError, match=r"cannot download the ViT-B/16 weights into .*Name or service not known.*"
                                        r"set MODEL.BACKBONE.PATH to a local CLIP checkpoint file") as err:
        load_clip("ViT-B/16", download_root=str(tmp_path))
    assert "\n" not in str(err.value)


def test_fp16_precision_keeps_openai_half_layers(tiny_clip_path):
    model = load_clip("", tiny_clip_path, precision="fp16")
    assert model.dtype == torch.float16
    assert model.ln_final.weight.dtype == torch.float32  # LayerNorm stays fp32, as in OpenAI's layout
