import torch
import torch.nn.functional as F

from clipprompt.methods.cocoop import CoCoOpCLIP

from clipprompt.methods.coop import CoOpCLIP

from clipprompt.methods.zeroshot import ZeroShotCLIP
from clipprompt.prompts.soft import tokenize
from clipprompt.clip.backbone import as_backbone
from conftest import TINY_RESOLUTION

NAMES = ["dog", "cat", "sea lion", "car"]


def images(n, seed=0):
    return torch.randn(n, 3, TINY_RESOLUTION, TINY_RESOLUTION, generator=torch.Generator().manual_seed(seed))


def logits_per_image_loop(model, image_features):
    """CoCoOp's logits as its original code computes them, one image at a time: the reference of
    ``CoCoOpCLIP.logits_from_features``, which encodes the prompts of every image in one pass."""
    ctx = model.conditional_context(image_features)
    rows = []
    for ctx_i, feat_i in zip(ctx, image_features):
        prompts = model.prompt_learner.assemble(ctx_i.unsqueeze(0))[0]
        text = F.normalize(model.text_encoder(prompts, model.prompt_learner.tokenized_prompts).float(), dim=-1)
        rows.append(model.scale() * feat_i @ text.t())
    return torch.stack(rows)


def test_cocoop_vectorised_equals_per_image_loop(tiny_clip):
    torch.manual_seed(0)
    model = CoCoOpCLIP(tiny_clip, NAMES, n_ctx=4, ctx_init="a photo of a")
    with torch.no_grad():  # a non-trivial meta-net so that each image gets its own prompts
        for p in model.meta_net.parameters():
            p.normal_(0, 0.5)
    features = model.encode_image(images(5))
    vectorised = model.logits_from_features(features)
    loop = logits_per_image_loop(model, features)
    assert vectorised.shape == (5, 4)
    torch.testing.assert_close(vectorised, loop, rtol=1e-5, atol=1e-5)
    # and the prompts really differ between images
    ctx = model.conditional_context(features)
    assert not torch.allclose(ctx[0], ctx[1])


def test_cocoop_gradients_reach_context_and_meta_net_only(tiny_clip):
    model = CoCoOpCLIP(tiny_clip, NAMES, n_ctx=4)
    loss = F.cross_entropy(model(images(3)), torch.tensor([0, 1, 2]))
    loss.backward()
    assert model.prompt_learner.ctx.grad is not None
    assert all(p.grad is not None for p in model.meta_net.parameters())
    assert all(p.grad is None for p in model.image_encoder.parameters())
    assert all(p.grad is None for p in model.text_encoder.parameters())


def test_coop_logits_are_scaled_cosine_similarities(tiny_clip):
    model = CoOpCLIP(tiny_clip, NAMES, ctx_init="a photo of a")
    x = images(2)
    with torch.no_grad():
        img = F.normalize(tiny_clip.encode_image(x), dim=-1)
        txt = F.normalize(tiny_clip.encode_text(tokenize([f"a photo of a {n}." for n in NAMES], as_backbone(tiny_clip))), dim=-1)
        expected = tiny_clip.logit_scale.exp() * img @ txt.t()
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


def test_zero_shot_equals_clip_with_template(tiny_clip):
    model = ZeroShotCLIP(tiny_clip, NAMES, ["a photo of a {}."])
    coop = CoOpCLIP(tiny_clip, NAMES, ctx_init="a photo of a")
    x = images(3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), coop(x), rtol=1e-4, atol=1e-4)


def test_text_features_computed_once_per_evaluation(tiny_clip):
    model = CoOpCLIP(tiny_clip, NAMES, n_ctx=4)
    calls = []
    original = model.compute_text_features
    model.compute_text_features = lambda: calls.append(1) or original()
    with model.cached_text_features():
        for seed in range(4):
            model.predict(images(2, seed))
    assert len(calls) == 1
    model.predict(images(2))  # outside an evaluation: recomputed (training needs fresh features)
    assert len(calls) == 2


def test_checkpointed_state_excludes_frozen_clip(tiny_clip):
    coop = CoOpCLIP(tiny_clip, NAMES, n_ctx=4)
    cocoop = CoCoOpCLIP(tiny_clip, NAMES, n_ctx=4)
    assert set(coop.trainable_state_dict()) == {"prompt_learner.ctx"}
    assert set(cocoop.trainable_state_dict()) == {"prompt_learner.ctx", "meta_net.0.weight", "meta_net.0.bias",
                                                  "meta_net.2.weight", "meta_net.2.bias"}
