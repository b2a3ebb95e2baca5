"""Tests for clipprompt.objectives.mixup: class prototypes, class-wise mixup, soft cross-entropy."""

import pytest
import torch
import torch.nn.functional as F

from clipprompt.objectives.mixup import (
    ClassPrototypes,
    ClassWiseMixup,
    sample_beta,
    soft_cross_entropy,
)
from clipprompt.errors import UserError


def unit(x):
    return F.normalize(x, dim=1)


def labelled_batch(num=24, dim=8, num_classes=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = unit(torch.randn(num, dim, generator=generator))
    labels = torch.randint(0, num_classes, (num,), generator=generator)
    return features, labels


# --------------------------------------------------------------------- prototypes


def test_prototypes_are_normalised_per_class_means():
    features, labels = labelled_batch(num_classes=4)
    labels[:4] = torch.arange(4)  # every class present
    prototypes = ClassPrototypes(num_classes=4, dim=8)
    prototypes.update(features[:10], labels[:10])
    prototypes.update(features[10:], labels[10:])  # accumulates across calls
    for c in range(4):
        expected = F.normalize(features[labels == c].mean(dim=0), dim=0)
        torch.testing.assert_close(prototypes.prototypes()[c], expected)
        assert prototypes.count[c].item() == int((labels == c).sum())
    assert prototypes.seen.all()


def test_unseen_classes_are_zero_rows_and_flagged():
    features, labels = labelled_batch(num_classes=3)
    prototypes = ClassPrototypes.from_features(features, labels, num_classes=6)
    assert prototypes.seen.tolist() == [True, True, True, False, False, False]
    assert torch.all(prototypes.prototypes()[3:] == 0)
    torch.testing.assert_close(prototypes.prototypes()[:3].norm(dim=1), torch.ones(3))


def test_update_takes_no_gradient_and_checks_labels():
    features, labels = labelled_batch()
    features.requires_grad_(True)
    prototypes = ClassPrototypes(5, 8)
    prototypes.update(features, labels)
    assert not prototypes.feature_sum.requires_grad
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        prototypes.update(features.detach(), torch.full_like(labels, 5))
    with pytest.raises(ValueError, match="features must be"):
        prototypes.update(torch.randn(3, 7), torch.zeros(3, dtype=torch.long))


def test_reset_clears_and_resizes():
    features, labels = labelled_batch()
    prototypes = ClassPrototypes.from_features(features, labels, 5)
    prototypes.reset()
    assert prototypes.count.sum() == 0 and not prototypes.seen.any()
    prototypes.reset(num_classes=3, dim=4)
    assert prototypes.feature_sum.shape == (3, 4) and prototypes.count.shape == (3,)


def test_state_dict_round_trip():
    features, labels = labelled_batch()
    source = ClassPrototypes.from_features(features, labels, 5)
    state = source.state_dict()
    assert set(state) == {"feature_sum", "count"}
    restored = ClassPrototypes(5, 8)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.prototypes(), source.prototypes())
    assert torch.equal(restored.count, source.count)
    # a model built for another class set adopts the checkpoint's statistics instead of failing
    other = ClassPrototypes(2, 8)
    other.load_state_dict(state)
    assert other.num_classes == 5 and torch.equal(other.count, source.count)


def test_prototypes_inside_a_parent_module_checkpoint():
    parent = torch.nn.Module()
    parent.prototypes = ClassPrototypes(5, 8)
    features, labels = labelled_batch()
    parent.prototypes.update(features, labels)
    copy = torch.nn.Module()
    copy.prototypes = ClassPrototypes(5, 8)
    copy.load_state_dict(parent.state_dict())
    torch.testing.assert_close(copy.prototypes.prototypes(), parent.prototypes.prototypes())


# --------------------------------------------------------------------- Beta sampling


def test_beta_sampler_moments_and_range():
    generator = torch.Generator().manual_seed(0)
    for alpha in (0.3, 1.0, 4.0):
        lam = sample_beta(alpha, 20000, generator=generator)
        assert lam.min() >= 0 and lam.max() <= 1
        assert lam.mean().item() == pytest.approx(0.5, abs=0.02)
        assert lam.var().item() == pytest.approx(1.0 / (4 * (2 * alpha + 1)), rel=0.06)


def test_mixup_is_reproducible_with_a_generator():
    features, labels = labelled_batch()
    prototypes = ClassPrototypes.from_features(features, labels, 5).prototypes()
    mixup = ClassWiseMixup("inter", alpha=0.5)
    first = mixup(features, labels, prototypes, generator=torch.Generator().manual_seed(3))
    second = mixup(features, labels, prototypes, generator=torch.Generator().manual_seed(3))
    third = mixup(features, labels, prototypes, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first.lam, second.lam) and torch.equal(first.partner, second.partner)
    assert not torch.equal(first.lam, third.lam)


# --------------------------------------------------------------------- mixup


def test_intra_mixes_with_own_class_prototype():
    features, labels = labelled_batch()
    store = ClassPrototypes.from_features(features, labels, 5)
    prototypes = store.prototypes()
    out = ClassWiseMixup("intra", alpha=1.0)(features, labels, prototypes, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.partner, labels)
    assert ((out.lam >= 0) & (out.lam <= 1)).all()
    expected = unit(out.lam[:, None] * features + (1 - out.lam[:, None]) * prototypes[labels])
    torch.testing.assert_close(out.features, expected)
    torch.testing.assert_close(out.features.norm(dim=1), torch.ones(len(labels)))
    torch.testing.assert_close(out.targets, F.one_hot(labels, 5).float())


def test_inter_partners_are_other_seen_classes_and_targets_mix():
    features, labels = labelled_batch(num=64, num_classes=4)  # classes 4..7 never seen
    store = ClassPrototypes.from_features(features, labels, num_classes=8)
    out = ClassWiseMixup("inter", alpha=1.0)(
        features, labels, store.prototypes(), store.seen, generator=torch.Generator().manual_seed(2)
    )
    assert (out.partner != labels).all()
    assert store.seen[out.partner].all()
    assert len(set(out.partner.tolist())) == 4  # uses every seen class, not a fixed one
    torch.testing.assert_close(out.targets.sum(dim=1), torch.ones(64))
    rows = torch.arange(64)
    torch.testing.assert_close(out.targets[rows, labels], out.lam)
    torch.testing.assert_close(out.targets[rows, out.partner], 1 - out.lam)
    mass_elsewhere = out.targets.clone()
    mass_elsewhere[rows, labels] = 0
    mass_elsewhere[rows, out.partner] = 0
    assert mass_elsewhere.abs().max() == 0
    torch.testing.assert_close(out.features.norm(dim=1), torch.ones(64))


def test_inter_falls_back_to_intra_when_no_other_class_is_seen():
    features, _ = labelled_batch(num=6)
    labels = torch.full((6,), 2)
    store = ClassPrototypes.from_features(features, labels, num_classes=5)
    out = ClassWiseMixup("inter")(features, labels, store.prototypes(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.partner, labels)
    torch.testing.assert_close(out.targets, F.one_hot(labels, 5).float())


def test_default_seen_mask_comes_from_zero_rows():
    features, labels = labelled_batch(num=40, num_classes=3)
    prototypes = ClassPrototypes.from_features(features, labels, num_classes=6).prototypes()
    out = ClassWiseMixup("inter")(features, labels, prototypes, generator=torch.Generator().manual_seed(5))
    assert (out.partner < 3).all() and (out.partner != labels).all()


def test_intra_with_unseen_own_class_leaves_sample_unmixed():
    features, labels = labelled_batch(num_classes=3)
    prototypes = ClassPrototypes.from_features(features[labels != 0], labels[labels != 0], 3).prototypes()
    out = ClassWiseMixup("intra")(features, labels, prototypes, generator=torch.Generator().manual_seed(6))
    own_unseen = labels == 0
    assert own_unseen.any()
    assert (out.lam[own_unseen] == 1).all()
    torch.testing.assert_close(out.features[own_unseen], features[own_unseen])


def test_mix_text_mixes_class_text_and_passes_gradients():
    text = unit(torch.randn(5, 8)).requires_grad_(True)
    labels, partner = torch.tensor([0, 1, 4]), torch.tensor([2, 1, 3])
    lam = torch.tensor([0.25, 0.6, 1.0])
    mixed = ClassWiseMixup.mix_text(text, labels, partner, lam)
    expected = unit(lam[:, None] * text[labels] + (1 - lam[:, None]) * text[partner])
    torch.testing.assert_close(mixed, expected)
    torch.testing.assert_close(mixed[1], text[1])  # partner == label: its own text
    mixed.sum().backward()
    grad_norms = text.grad.abs().sum(dim=1)
    assert grad_norms[[0, 1, 2, 4]].gt(0).all()
    assert grad_norms[3] == 0  # only partner of a sample with lam = 1: weight 0


def test_half_precision_features_keep_their_dtype():
    features, labels = labelled_batch()
    prototypes = ClassPrototypes.from_features(features, labels, 5).prototypes()
    out = ClassWiseMixup("inter")(features.half(), labels, prototypes, generator=torch.Generator().manual_seed(0))
    assert out.features.dtype == torch.float16 and out.targets.dtype == torch.float32


def test_bad_mode_and_alpha_name_the_config_key():
    with pytest.raises(ValueError, match="AUG.MODE.*intra, inter"):
        ClassWiseMixup("cutmix")
    with pytest.raises(UserError, match="AUG.ALPHA"):
        ClassWiseMixup("intra", alpha=0.0)


# --------------------------------------------------------------------- soft cross-entropy


def test_soft_cross_entropy_matches_hard_and_mixed_targets():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    hard = soft_cross_entropy(logits, F.one_hot(labels, 4).float())
    torch.testing.assert_close(hard, F.cross_entropy(logits, labels))
    other = torch.tensor([1, 2, 3, 0, 2, 3])
    lam = torch.rand(6)
    targets = lam[:, None] * F.one_hot(labels, 4) + (1 - lam[:, None]) * F.one_hot(other, 4)
    expected = (
        lam * F.cross_entropy(logits, labels, reduction="none")
        + (1 - lam) * F.cross_entropy(logits, other, reduction="none")
    ).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, targets), expected)
    with pytest.raises(ValueError, match="same"):
        soft_cross_entropy(logits, targets[:, :3])
