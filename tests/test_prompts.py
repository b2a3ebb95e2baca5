import pytest
import torch
import torch.nn.functional as F
from clip import clip as clip_api

from clipprompt.errors import UserError
from clipprompt.prompts.soft import SoftPrompt, class_name_length, tokenize
from clipprompt.prompts.hand import encode_hand_crafted
from clipprompt.clip.towers import TextEncoder
from clipprompt.clip.backbone import as_backbone

NAMES = ["dog", "golden_retriever", "sea lion"]


def embed(clip_model, text):
    with torch.no_grad():
        return clip_model.token_embedding(tokenize(text, as_backbone(clip_model)))[0]


@pytest.mark.parametrize("position,sentence", [
    ("end", "a photo of a {}."),
    ("front", "{} a photo of a."),
    ("middle", "a photo {} of a."),
])
def test_class_token_position_builds_the_sentence(tiny_clip, position, sentence):
    prompt = SoftPrompt(as_backbone(tiny_clip), NAMES, ctx_init="a photo of a", class_token_position=position)
    assert prompt.n_ctx == 4
    built = prompt()
    for i, name in enumerate(NAMES):
        expected = embed(tiny_clip, sentence.format(name.replace("_", " ")))
        torch.testing.assert_close(built[i], expected)


def test_soft_prompt_through_text_encoder_equals_clip_encode_text(tiny_clip):
    prompt = SoftPrompt(as_backbone(tiny_clip), NAMES, ctx_init="a photo of a")
    features = TextEncoder(as_backbone(tiny_clip))(prompt(), prompt.tokenized_prompts)
    with torch.no_grad():
        reference = tiny_clip.encode_text(tokenize([f"a photo of a {n.replace('_', ' ')}." for n in NAMES], as_backbone(tiny_clip)))
    torch.testing.assert_close(features, reference, rtol=1e-4, atol=1e-5)


def test_random_context_shapes_and_csc(tiny_clip):
    shared = SoftPrompt(as_backbone(tiny_clip), NAMES, n_ctx=6)
    csc = SoftPrompt(as_backbone(tiny_clip), NAMES, n_ctx=6, csc=True)
    width = tiny_clip.ln_final.weight.shape[0]
    assert shared.ctx.shape == (6, width)
    assert csc.ctx.shape == (3, 6, width)
    assert shared().shape == csc().shape == (3, 77, width)
    # class-specific: changing class 0's context changes only prompt 0
    with torch.no_grad():
        before = csc().clone()
        csc.ctx[0] += 1.0
        after = csc()
    assert not torch.equal(before[0], after[0])
    torch.testing.assert_close(before[1:], after[1:])


def test_checkpointed_state_is_class_independent(tiny_clip):
    prompt = SoftPrompt(as_backbone(tiny_clip), NAMES, n_ctx=4)
    assert set(prompt.state_dict()) == {"ctx"}
    other = SoftPrompt(as_backbone(tiny_clip), ["cat", "car"], n_ctx=4)
    other.load_state_dict(prompt.state_dict())
    assert other().shape[0] == 2


def test_csc_cannot_change_class_set(tiny_clip):
    prompt = SoftPrompt(as_backbone(tiny_clip), NAMES, n_ctx=4, csc=True)
    with pytest.raises(UserError, match="class-specific"):
        prompt.set_classnames(as_backbone(tiny_clip), ["cat", "car"])


def test_bad_position_and_context_are_user_errors(tiny_clip):
    with pytest.raises(UserError, match="CLASS_TOKEN_POSITION"):
        SoftPrompt(as_backbone(tiny_clip), NAMES, class_token_position="left")
    with pytest.raises(UserError, match="N_CTX"):
        SoftPrompt(as_backbone(tiny_clip), NAMES, n_ctx=0)


def test_class_name_length_counts_bpe_tokens():
    assert class_name_length("dog") == 1
    assert class_name_length("golden_retriever") == len(clip_api._tokenizer.encode("golden retriever"))


@pytest.mark.parametrize("full", [False, True])
def test_text_encoder_feature_is_the_end_of_text_position(tiny_clip, full):
    """A prompt's feature is the state at its EOT token (the largest id): what follows the EOT does
    not change it, what sits at the EOT does."""
    encoder = TextEncoder(as_backbone(tiny_clip))
    encoder.full_context = full
    tokens = tokenize(["a photo of a dog.", "a cat."], as_backbone(tiny_clip))
    eot = tokens.argmax(dim=-1)
    assert eot[0] > eot[1]  # the shorter prompt has positions after its EOT even in a short pass
    with torch.no_grad():
        embeddings = tiny_clip.token_embedding(tokens).float()
        noise = torch.randn(embeddings.shape, generator=torch.Generator().manual_seed(0))  # not constant: LayerNorm
        after, at = embeddings.clone(), embeddings.clone()
        for row, position in enumerate(eot.tolist()):
            after[row, position + 1:] += noise[row, position + 1:]
            at[row, position] += noise[row, position]
        features, features_after, features_at = (encoder(x, tokens) for x in (embeddings, after, at))
    torch.testing.assert_close(features_after, features)
    for row in range(2):
        assert not torch.allclose(features_at[row], features[row], atol=1e-4), row


def test_hand_crafted_ensemble_is_normalised_mean(tiny_clip):
    one = encode_hand_crafted(as_backbone(tiny_clip), NAMES, "a photo of a {}.")
    two = encode_hand_crafted(as_backbone(tiny_clip), NAMES, ["itap of a {}."])
    both = encode_hand_crafted(as_backbone(tiny_clip), NAMES, ["a photo of a {}.", "itap of a {}."])
    torch.testing.assert_close(both, F.normalize(one + two, dim=-1))
    torch.testing.assert_close(one.norm(dim=-1), torch.ones(3))
    with pytest.raises(ValueError, match="placeholder"):
        encode_hand_crafted(as_backbone(tiny_clip), NAMES, ["no placeholder"])


def test_raw_ensemble_averages_unnormalised_features(tiny_clip):
    """PromptSRC's official teacher rule: normalise(mean of the unnormalised template features); it
    weighs a template by its feature norm, so it differs from CLIP's rule unless the norms are equal."""
    backbone = as_backbone(tiny_clip)
    templates = ["a photo of a {}.", "itap of a {}.", "a sketch of the {}."]
    encoder = TextEncoder(backbone)
    raw = []
    with torch.no_grad():
        for template in templates:
            tokens = backbone.tokenize([template.format(name.replace("_", " ")) for name in NAMES])
            raw.append(encoder(backbone.token_embedding(tokens), tokens).float())
    expected_raw = F.normalize(sum(raw) / 3, dim=-1)
    expected_unit = F.normalize(sum(F.normalize(f, dim=-1) for f in raw) / 3, dim=-1)
    got_raw = encode_hand_crafted(backbone, NAMES, templates, ensemble="raw")
    got_unit = encode_hand_crafted(backbone, NAMES, templates)
    torch.testing.assert_close(got_raw, expected_raw)
    torch.testing.assert_close(got_unit, expected_unit)
    assert (got_raw - got_unit).abs().max() > 1e-4  # the norms differ on this CLIP, so the rules do
    # one template: both rules are that template's unit features
    torch.testing.assert_close(encode_hand_crafted(backbone, NAMES, templates[:1], ensemble="raw"),
                               encode_hand_crafted(backbone, NAMES, templates[:1]))
    with pytest.raises(ValueError, match="ensemble"):
        encode_hand_crafted(backbone, NAMES, templates, ensemble="mean")
