"""Tests for clipprompt.mi: posterior (IIC) MI, critic bounds and the factory."""

import math

import pytest
import torch
import torch.nn.functional as F

from clipprompt.errors import UserError
from clipprompt.mi import (
    BilinearCritic,
    CriticMI,
    PosteriorMI,
    build_view_mi,
    dv_bound,
    infonce_bound,
    jsd_bound,
    mutual_information_from_joint,
    posterior_mutual_information,
)

BOUNDS = {"infonce": infonce_bound, "jsd": jsd_bound, "dv": dv_bound}


def unit(x):
    return F.normalize(x, dim=1)


# --------------------------------------------------------------------- posterior


def test_mi_of_joint_matches_hand_computation():
    # un-normalised on purpose: the function normalises (total 8)
    joint = torch.tensor([[3.0, 1.0], [0.0, 4.0]])
    p = joint / 8
    rows, cols = p.sum(1), p.sum(0)
    expected = sum(
        p[a, b].item() * math.log(p[a, b].item() / (rows[a].item() * cols[b].item()))
        for a in range(2)
        for b in range(2)
        if p[a, b] > 0
    )
    assert mutual_information_from_joint(joint).item() == pytest.approx(expected, abs=1e-6)


def test_mi_of_joint_extremes():
    assert mutual_information_from_joint(torch.eye(4)).item() == pytest.approx(math.log(4), abs=1e-5)
    outer = torch.outer(torch.tensor([0.2, 0.3, 0.5]), torch.tensor([0.1, 0.6, 0.3]))
    assert mutual_information_from_joint(outer).item() == pytest.approx(0.0, abs=1e-6)


def test_mi_of_joint_rejects_bad_tables():
    with pytest.raises(ValueError, match="2-D"):
        mutual_information_from_joint(torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        mutual_information_from_joint(torch.zeros(2, 2))


def test_posterior_mi_zero_for_independent_views():
    torch.manual_seed(0)
    logits_a = torch.randn(16, 5) * 3
    # the second view gives every image the same posterior: no information about view a
    logits_b = torch.randn(1, 5).expand(16, 5)
    assert posterior_mutual_information(logits_a, logits_b).item() == pytest.approx(0.0, abs=1e-6)


def test_posterior_mi_is_log_c_for_identical_confident_balanced_views():
    num_classes = 6
    labels = torch.arange(num_classes).repeat(3)  # balanced batch
    logits = F.one_hot(labels, num_classes).float() * 100.0
    value = posterior_mutual_information(logits, logits.clone())
    assert value.item() == pytest.approx(math.log(num_classes), abs=1e-4)
    # disagreeing views (a random permutation of labels) carry less information
    shuffled = F.one_hot(labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(0))], num_classes)
    assert posterior_mutual_information(logits, shuffled.float() * 100.0).item() < value.item() - 0.5


def test_posterior_mi_gradients_reach_both_views():
    torch.manual_seed(1)
    logits_soft = torch.randn(8, 4, requires_grad=True)
    logits_hand = torch.randn(8, 4, requires_grad=True)
    PosteriorMI()(logits_soft, logits_hand).backward()
    for logits in (logits_soft, logits_hand):
        assert logits.grad is not None and torch.isfinite(logits.grad).all()
        assert logits.grad.abs().sum() > 0


def test_posterior_mi_half_precision_logits():
    torch.manual_seed(2)
    logits = torch.randn(8, 4)
    full = posterior_mutual_information(logits, logits * 2)
    half = posterior_mutual_information(logits.half(), (logits * 2).half())
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), abs=1e-2)


def test_learnable_temperature_stays_inside_bounds():
    module = PosteriorMI(learn_temperature=True, init_scale=1.0, scale_bounds=(0.5, 4.0))
    assert module.scale.item() == pytest.approx(1.0, rel=1e-5)
    assert [name for name, _ in module.named_parameters()] == ["raw_scale"]
    torch.manual_seed(3)
    labels = torch.arange(4).repeat(4)
    logits = F.one_hot(labels, 4).float() + 0.3 * torch.randn(16, 4)
    optimizer = torch.optim.SGD(module.parameters(), lr=50.0)
    for _ in range(50):  # maximising MI sharpens: the scale climbs to, never past, its upper bound
        optimizer.zero_grad()
        (-module(logits, logits)).backward()
        optimizer.step()
    assert 3.9 < module.scale.item() <= 4.0
    # fixed by default: no parameters
    assert list(PosteriorMI().parameters()) == []


# --------------------------------------------------------------------- critic bounds


def test_critic_is_scaled_cosine_at_init():
    torch.manual_seed(4)
    a, b = torch.randn(5, 8), torch.randn(7, 8)
    critic = BilinearCritic(8, 8, tau=0.1)
    assert critic(a, b).shape == (5, 7)
    torch.testing.assert_close(critic(a, b), unit(a) @ unit(b).t() / 0.1)
    # unequal dims: rectangular identity keeps the first coordinates
    critic = BilinearCritic(8, 6, tau=0.5, normalize=False)
    assert critic.proj_dim == 6
    torch.testing.assert_close(critic(a, b[:, :6]), a[:, :6] @ b[:, :6].t() / 0.5)


def test_critic_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="critic expects"):
        BilinearCritic(4, 4)(torch.randn(3, 5), torch.randn(3, 4))
    with pytest.raises(ValueError, match="square"):
        infonce_bound(torch.randn(3, 4))


def test_infonce_matches_cross_entropy_form_and_is_at_most_log_n():
    torch.manual_seed(5)
    for n in (2, 7, 32):
        scores = torch.randn(n, n) * 10
        scores.diagonal().add_(30.0)  # near-perfect separation
        value = infonce_bound(scores)
        expected = math.log(n) - F.cross_entropy(scores, torch.arange(n))
        assert value.item() == pytest.approx(expected.item(), abs=1e-5)
        assert value.item() <= math.log(n) + 1e-6
        assert infonce_bound(scores, symmetric=True).item() <= math.log(n) + 1e-6


def test_dv_and_jsd_match_their_definitions():
    scores = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0], [1.5, 0.3, 3.0]])
    positives = torch.tensor([2.0, 1.0, 3.0])
    negatives = torch.tensor([-1.0, 0.5, 0.0, -2.0, 1.5, 0.3])
    dv = positives.mean() - torch.log(torch.exp(negatives).mean())
    jsd = (-F.softplus(-positives)).mean() - F.softplus(negatives).mean()
    assert dv_bound(scores).item() == pytest.approx(dv.item(), abs=1e-6)
    assert jsd_bound(scores).item() == pytest.approx(jsd.item(), abs=1e-6)
    assert jsd_bound(scores).item() <= 0.0


def test_single_pair_gives_zero():
    scores = torch.tensor([[5.0]], requires_grad=True)
    for bound in BOUNDS.values():
        value = bound(scores)
        assert value.item() == 0.0
        assert torch.isfinite(value)


@pytest.mark.parametrize("estimator", sorted(BOUNDS))
def test_aligned_pairs_score_higher_than_shuffled(estimator):
    torch.manual_seed(6)
    a = unit(torch.randn(16, 12))
    b = unit(a + 0.3 * torch.randn(16, 12))
    module = CriticMI(12, estimator=estimator, tau=0.1)
    shuffled = b[torch.roll(torch.arange(16), 1)]
    assert module(a, b).item() > module(a, shuffled).item() + 0.1


def test_unknown_estimator_names_allowed_values():
    with pytest.raises(ValueError, match="infonce, jsd, dv"):
        CriticMI(4, estimator="nwj")


def _correlated_gaussians(rho, n, dim, generator):
    x = torch.randn(n, dim, generator=generator)
    noise = torch.randn(n, dim, generator=generator)
    return x, rho * x + math.sqrt(1.0 - rho * rho) * noise


@pytest.mark.parametrize("estimator", sorted(BOUNDS))
def test_trained_critic_estimate_grows_with_correlation(estimator):
    # true MI = -d/2 log(1 - rho^2): 0, 0.58, 3.32 nats for d = 4
    dim, n, steps = 4, 64, 150
    estimates = []
    for rho in (0.0, 0.5, 0.9):
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(1)
        module = CriticMI(dim, estimator=estimator, tau=0.1, learn_tau=True, tau_bounds=(0.01, 10.0))
        optimizer = torch.optim.Adam(module.parameters(), lr=0.02)
        for _ in range(steps):
            optimizer.zero_grad()
            (-module(*_correlated_gaussians(rho, n, dim, generator))).backward()
            optimizer.step()
        with torch.no_grad():
            value = sum(module(*_correlated_gaussians(rho, n, dim, generator)).item() for _ in range(4)) / 4
        estimates.append(value)
        if estimator == "infonce":
            assert value <= math.log(n) + 1e-6
    assert estimates[0] < estimates[1] < estimates[2], estimates
    if estimator != "jsd":  # InfoNCE and DV are in nats: near 0 for independent, well above for rho 0.9
        assert abs(estimates[0]) < 0.2
        assert estimates[2] > 1.5
        assert estimates[2] < -dim / 2 * math.log(1 - 0.81) + 0.5  # a lower bound, up to sampling noise


def test_fixed_tau_bound_responds_to_drifting_soft_embeddings():
    torch.manual_seed(7)
    hand = unit(torch.randn(10, 16))
    module = build_view_mi("critic", 16, estimator="infonce", tau=0.07)
    assert list(module.parameters()) == []  # frozen projections, fixed tau: nothing to sharpen
    aligned = module(hand.clone(), hand).item()
    slightly = module(unit(hand + 0.5 * torch.randn(10, 16)), hand).item()
    unrelated = module(unit(torch.randn(10, 16)), hand).item()
    assert aligned > slightly > unrelated
    assert aligned <= math.log(10) + 1e-6
    # and the gradient pulls drifted soft embeddings back towards the hand-crafted ones
    soft = unit(hand + 0.5 * torch.randn(10, 16)).requires_grad_(True)
    optimizer = torch.optim.SGD([soft], lr=0.05)
    before = module(soft, hand).item()
    for _ in range(20):
        optimizer.zero_grad()
        (-module(soft, hand)).backward()
        optimizer.step()
    assert module(soft, hand).item() > before


def test_learnable_projections_saturate_a_fixed_class_level_bound():
    # why build_view_mi freezes the projections: on a fixed set of C pairs the
    # critic alone reaches log C even for unrelated embeddings
    torch.manual_seed(8)
    soft, hand = unit(torch.randn(8, 16)), unit(torch.randn(8, 16))
    module = CriticMI(16, estimator="infonce", tau=0.07, learn_projection=True)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    before = module(soft, hand).item()
    for _ in range(150):
        optimizer.zero_grad()
        (-module(soft, hand)).backward()
        optimizer.step()
    after = module(soft, hand).item()
    assert before < 0.5 * math.log(8)
    assert after > math.log(8) - 0.1


def test_learnable_tau_stays_inside_bounds():
    critic = BilinearCritic(4, 4, tau=0.07, learn_tau=True, tau_bounds=(0.05, 1.0))
    assert critic.tau.item() == pytest.approx(0.07, rel=1e-5)
    with torch.no_grad():
        critic.raw_tau.fill_(-1e4)
    assert critic.tau.item() == pytest.approx(0.05)
    with pytest.raises(UserError, match="inside its bounds"):
        BilinearCritic(4, 4, tau=2.0, learn_tau=True, tau_bounds=(0.01, 1.0))


def test_visual_text_term_on_a_batch():
    # mixed image features vs mixed text targets: B x B, same (CLIP) dim, grads reach the text
    torch.manual_seed(9)
    images = unit(torch.randn(12, 32))
    text = unit(images + 0.2 * torch.randn(12, 32)).requires_grad_(True)
    module = CriticMI(32, 32, estimator="infonce")
    value = module(images, text)
    assert value.dim() == 0 and value.item() <= math.log(12)
    value.backward()
    assert text.grad is not None and text.grad.abs().sum() > 0
    assert sum(p.grad.abs().sum() for p in module.parameters()) > 0


# --------------------------------------------------------------------- factory


def test_build_view_mi_modes():
    posterior = build_view_mi("posterior", 512)
    assert isinstance(posterior, PosteriorMI) and posterior.input_kind == "logits"
    assert isinstance(build_view_mi("posterior", 512, learn_temperature=True).raw_scale, torch.nn.Parameter)
    critic = build_view_mi("critic", 64, estimator="dv", tau=0.1, learn_tau=True)
    assert isinstance(critic, CriticMI) and critic.input_kind == "embeddings"
    assert critic.estimator == "dv" and critic.critic.tau.item() == pytest.approx(0.1, rel=1e-5)
    assert [name for name, _ in critic.named_parameters()] == ["critic.raw_tau"]
    learnt = CriticMI(8, estimator="jsd")
    assert sorted(name for name, _ in learnt.named_parameters()) == ["critic.weight_a", "critic.weight_b"]
    with pytest.raises(ValueError, match="MI.MODE.*posterior, critic"):
        build_view_mi("bogus", 64)
