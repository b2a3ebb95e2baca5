"""Tests for clipprompt.objectives.mi: posterior (IIC) MI, critic bounds, views_nce, gaussian and the factory."""

import math

import pytest
import torch
import torch.nn.functional as F

from clipprompt.errors import UserError
from clipprompt.objectives.mi import (
    CLIP_TAU,
    GAUSS_VAR_BOUNDS,
    NCE_TAU_BOUNDS,
    BilinearCritic,
    CriticMI,
    GaussianMI,
    PosteriorMI,
    ViewsNCE,
    build_view_mi,
    dv_bound,
    infonce_bound,
    jsd_bound,
    mutual_information_from_joint,
    posterior_mutual_information,
)
from clipprompt.prompts.soft import SoftPrompt
from clipprompt.prompts.hand import encode_hand_crafted_per_template
from clipprompt.clip.towers import TextEncoder
from clipprompt.clip.backbone import as_backbone

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


def test_build_view_mi_new_modes():
    nce = build_view_mi("views_nce", 64)
    assert isinstance(nce, ViewsNCE) and nce.input_kind == "embeddings"
    assert nce.tau.item() == pytest.approx(CLIP_TAU) and list(nce.parameters()) == []
    learnt = build_view_mi("views_nce", 64, nce_tau=0.02, nce_learn_tau=True)
    assert [name for name, _ in learnt.named_parameters()] == ["raw_tau"]
    assert learnt.tau.item() == pytest.approx(0.02, rel=1e-5)
    gauss = build_view_mi("gaussian", 64, gauss_var=0.5, gauss_learn_var=True, gauss_var_bounds=(0.1, 2.0))
    assert isinstance(gauss, GaussianMI) and gauss.input_kind == "embeddings"
    assert [name for name, _ in gauss.named_parameters()] == ["raw_var"]
    torch.testing.assert_close(gauss.variance, torch.full((64,), 0.5))
    mapped = build_view_mi("gaussian", 8, gauss_learn_map=True)  # the variance stays fixed
    assert [name for name, _ in mapped.named_parameters()] == ["map"]
    torch.testing.assert_close(mapped.map, torch.eye(8))
    with pytest.raises(ValueError, match="views_nce, gaussian"):
        build_view_mi("bogus", 64)


# --------------------------------------------------------------------- views_nce


def test_views_nce_matches_symmetric_cross_entropy_form():
    torch.manual_seed(10)
    soft, hand = unit(torch.randn(6, 16)), unit(torch.randn(6, 16))
    module = ViewsNCE(tau=0.1)
    scores = soft @ hand.t() / 0.1
    target = torch.arange(6)
    loss = 0.5 * (F.cross_entropy(scores, target) + F.cross_entropy(scores.t(), target))
    assert module(soft, hand).item() == pytest.approx(math.log(6) - loss.item(), abs=1e-5)
    # the same as the critic's symmetric InfoNCE at the same temperature (frozen projections)
    assert module(soft, hand).item() == pytest.approx(infonce_bound(scores, symmetric=True).item(), abs=1e-5)


def test_views_nce_every_template_is_a_positive():
    torch.manual_seed(11)
    soft = unit(torch.randn(5, 16))
    hand = unit(torch.randn(3, 5, 16).reshape(15, 16)).reshape(3, 5, 16)
    module = ViewsNCE(tau=0.05)
    per_template = [module(soft, hand[k]).item() for k in range(3)]
    assert module(soft, hand).item() == pytest.approx(sum(per_template) / 3, abs=1e-5)
    # LASP's direction (hand -> soft) is the column-wise cross-entropy of each template's scores
    scores = module.scores(soft, hand)
    assert scores.shape == (3, 5, 5)
    lasp = F.cross_entropy(scores, torch.arange(5).expand(3, 5))  # classes along dim 1, as in LASP
    cols = torch.stack([F.cross_entropy(scores[k].t(), torch.arange(5)) for k in range(3)]).mean()
    assert lasp.item() == pytest.approx(cols.item(), abs=1e-5)


def test_views_nce_known_values():
    torch.manual_seed(12)
    c = 8
    hand = unit(torch.randn(c, 32))
    module = ViewsNCE()  # tau = 1/100
    identical = module(hand.clone(), hand).item()
    assert math.log(c) - 0.05 < identical <= math.log(c) + 1e-6
    # every soft embedding the same vector: no information about the class
    constant = unit(torch.randn(1, 32)).expand(c, 32)
    assert module(constant, hand).item() < 0.5 * math.log(c)
    # several identical templates give the single-template value
    assert module(hand, torch.stack([hand, hand])).item() == pytest.approx(identical, abs=1e-6)
    with pytest.raises(ValueError, match="same classes"):
        module(hand, hand[:5])


def test_views_nce_learnable_tau_cannot_saturate_unrelated_views():
    torch.manual_seed(13)
    c = 8
    soft, hand = unit(torch.randn(c, 32)), unit(torch.randn(c, 32))
    module = ViewsNCE(tau=0.05, learn_tau=True)
    assert [name for name, _ in module.named_parameters()] == ["raw_tau"]
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        (-module(soft, hand)).backward()
        optimizer.step()
    low, high = NCE_TAU_BOUNDS
    assert low <= module.tau.item() <= high
    assert module(soft, hand).item() < 0.25 * math.log(c)  # the temperature alone finds no dependence
    # on aligned views the same optimisation sharpens the temperature and reaches log C
    module = ViewsNCE(tau=0.05, learn_tau=True)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    aligned = unit(hand + 0.1 * torch.randn(c, 32))
    for _ in range(200):
        optimizer.zero_grad()
        (-module(aligned, hand)).backward()
        optimizer.step()
    assert low <= module.tau.item() < 0.05
    assert module(aligned, hand).item() > math.log(c) - 0.05
    with pytest.raises(UserError, match="inside its bounds"):
        ViewsNCE(tau=1.0, learn_tau=True)


# --------------------------------------------------------------------- gaussian


def test_gaussian_nll_closed_form():
    torch.manual_seed(14)
    dim = 6
    soft, hand = unit(torch.randn(4, dim)), unit(torch.randn(4, dim))
    variance = torch.tensor([0.5, 1.0, 2.0, 0.25, 4.0, 1.5])
    module = GaussianMI(dim, learn_var=False)
    module.fixed_var = variance
    expected = torch.stack([
        sum(0.5 * (dim * (soft[c, d] - hand[c, d]) ** 2 / variance[d] + math.log(variance[d]) + math.log(2 * math.pi))
            for d in range(dim)) / dim
        for c in range(4)
    ])
    torch.testing.assert_close(module.nll(soft, hand), expected)
    assert module(soft, hand).item() == pytest.approx(-expected.mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match="gaussian MI expects"):
        module(soft, hand[:, :5])


@pytest.mark.parametrize("var", [1.0, 0.25])
def test_gaussian_with_fixed_variance_is_kgcoop_term(var):
    # -E log q = (1 - mean_c cos) / var + (log var + log 2 pi) / 2: KgCoOp's W (1 - mean cos), W = 1 / var
    torch.manual_seed(15)
    hand = unit(torch.randn(10, 32))
    soft = unit(hand + 0.4 * torch.randn(10, 32)).requires_grad_(True)
    module = GaussianMI(32, var=var, learn_var=False)
    kgcoop = 1.0 - F.cosine_similarity(soft, hand, dim=1).mean()
    constant = 0.5 * (math.log(var) + math.log(2 * math.pi))
    value = -module(soft, hand)
    assert value.item() == pytest.approx(kgcoop.item() / var + constant, abs=1e-5)
    (grad_gauss,) = torch.autograd.grad(value, soft)
    (grad_kg,) = torch.autograd.grad(kgcoop / var, soft)
    # equal on the tangent space of the unit sphere (the normalised soft view moves only there)
    tangent = lambda g: g - (g * soft).sum(dim=1, keepdim=True) * soft  # noqa: E731
    torch.testing.assert_close(tangent(grad_gauss), tangent(grad_kg), atol=1e-6, rtol=1e-4)
    # and as a mean squared distance: ||a - b||^2 = 2 (1 - cos) for unit vectors
    squared = (soft - hand).pow(2).sum(dim=1).mean() / 2
    assert value.item() == pytest.approx(squared.item() / var + constant, abs=1e-5)


def test_gaussian_learnable_variance_fits_residuals_inside_bounds():
    torch.manual_seed(16)
    dim, c = 16, 12
    low, high = GAUSS_VAR_BOUNDS
    hand = unit(torch.randn(c, dim))
    scale = torch.linspace(0.02, 0.3, dim)  # some dimensions agree more than others
    soft = unit(hand + scale * torch.randn(c, dim))
    module = GaussianMI(dim, var=1.0, learn_var=True)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(600):
        optimizer.zero_grad()
        (-module(soft, hand)).backward()
        optimizer.step()
    # the NLL's optimum is the mean squared (scaled) residual per dimension, clipped to the bounds
    optimum = (dim * (soft - hand).pow(2)).mean(dim=0).clamp(low, high)
    torch.testing.assert_close(module.variance.detach(), optimum, rtol=0.05, atol=1e-3)
    assert low <= module.variance.min().item() and module.variance.max().item() <= high
    # identical views: the variance runs to, never past, its lower bound; the value to its maximum
    module = GaussianMI(dim, var=1.0, learn_var=True)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    for _ in range(400):
        optimizer.zero_grad()
        (-module(hand, hand)).backward()
        optimizer.step()
    assert module.variance.min().item() >= low
    ceiling = -0.5 * (math.log(low) + math.log(2 * math.pi))
    assert module(hand, hand).item() == pytest.approx(ceiling, abs=0.02)


def test_gaussian_variance_learns_under_sgd_at_a_prompt_learning_rate():
    # the per-dimension mean divides each variance's gradient by D; the sqrt(D) storage undoes it,
    # so plain SGD at the mini configs' LR (0.02) moves the variance to the residuals in ~200 steps
    torch.manual_seed(19)
    dim, c = 128, 10
    hand = unit(torch.randn(c, dim))
    soft = unit(hand + 0.03 * torch.randn(c, dim))
    residual = (dim * (soft - hand).pow(2)).mean().item()  # 2 (1 - mean cos), about 0.1 here
    module = GaussianMI(dim, var=1.0, learn_var=True)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.02)
    for _ in range(200):
        optimizer.zero_grad()
        (-module(soft, hand)).backward()
        optimizer.step()
    assert module.variance.mean().item() < 2 * residual


def test_gaussian_variance_alone_cannot_saturate_but_a_learnt_map_can():
    torch.manual_seed(17)
    dim, c = 32, 8
    soft, hand = unit(torch.randn(c, dim)), unit(torch.randn(c, dim))
    ceiling = -0.5 * (math.log(GAUSS_VAR_BOUNDS[0]) + math.log(2 * math.pi))

    def train(module, steps=400):
        optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
        for _ in range(steps):
            optimizer.zero_grad()
            (-module(soft, hand)).backward()
            optimizer.step()
        return module(soft, hand).item()

    # the variance alone settles at the residuals: far from the ceiling for unrelated views
    assert train(GaussianMI(dim, learn_var=True)) < ceiling - 1.5
    # a learnable map fits the C < D unrelated pairs by itself (why MI.GAUSS_LEARN_MAP is off by default)
    assert train(GaussianMI(dim, learn_var=True, learn_map=True), steps=600) > ceiling - 0.3


# --------------------------------------------------------------------- gradients through the prompt


NAMES = ["dog", "cat", "sea lion", "car"]


@pytest.mark.parametrize("mode", ["views_nce", "gaussian", "critic"])
def test_class_level_modes_send_gradients_to_the_context(tiny_clip, mode):
    torch.manual_seed(18)
    prompt = SoftPrompt(as_backbone(tiny_clip), NAMES, ctx_init="a photo of a")
    encoder = TextEncoder(as_backbone(tiny_clip))
    soft = F.normalize(encoder(prompt(), prompt.tokenized_prompts).float(), dim=-1)
    per_template = encode_hand_crafted_per_template(as_backbone(tiny_clip), NAMES, ["a photo of a {}.", "a sketch of a {}."])
    assert per_template.shape == (2, len(NAMES), soft.shape[1])
    hand = per_template if mode == "views_nce" else F.normalize(per_template.mean(dim=0), dim=-1)
    module = build_view_mi(mode, soft.shape[1])
    value = module(soft, hand)
    assert torch.isfinite(value)
    value.backward()
    assert prompt.ctx.grad is not None and prompt.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_clip.parameters())  # CLIP itself gets nothing
