"""Objectives that tie a soft prompt to frozen CLIP's hand-crafted prompts (KgCoOp, ProGrad).

* KgCoOp (Yao et al., CVPR 2023): CoOp's cross-entropy plus
  ``W * (1 - mean_c cos(t_c^soft, t_c^hand))``. The official code computes this
  1 - mean cosine (on unit vectors it is half the squared L2 distance the paper
  writes), so its W = 8 is the W here.
* ProGrad (Zhu et al., ICCV 2023): the cross-entropy gradient, with the part
  that conflicts with the gradient of KL(zero-shot || prompted) projected out.
  The KL term only steers the direction; it is never added to the loss.
"""

import torch
import torch.nn.functional as F


def knowledge_guidance(soft_features, hand_features):
    """KgCoOp's term ``1 - mean_c cos(t_c^soft, t_c^hand)`` over the C classes (0 when equal, 2 when opposite)."""
    return 1.0 - F.cosine_similarity(soft_features, hand_features, dim=-1, eps=1e-7).mean()


def zero_shot_kl(student_logits, teacher_logits, temperature=1.0):
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, batch mean; the teacher is detached.

    ProGrad's code uses the cross-entropy ``-sum p_zs log p`` instead, which differs
    by the teacher's entropy, a constant: same gradient, but this one is 0 at agreement.
    """
    t = temperature
    teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * t * t


def project_conflicting(grads, guide_grads, lam=1.0):
    """ProGrad's rule, per tensor: where ``<g, h> < 0``, ``g <- g - lam * <g, h> / ||h||^2 * h``.

    ``grads`` are the task (cross-entropy) gradients, ``guide_grads`` those of the
    zero-shot KL. With lam = 1 a conflicting g loses exactly its component along h
    (the result is orthogonal to h); an agreeing g, a zero h or a missing
    gradient (None) is returned unchanged. Per tensor, as in the official code;
    for CoOp's single context tensor that is the global projection.
    """
    projected = []
    for g, h in zip(grads, guide_grads, strict=True):
        if g is not None and h is not None:
            dot, norm2 = torch.sum(g.float() * h.float()), torch.sum(h.float() ** 2)  # fp32 sums under fp16
            if dot < 0 and norm2 > 0:
                g = g - (lam * dot / norm2).to(g.dtype) * h
        projected.append(g)
    return projected


def prograd_gradients(ce_loss, kl_loss, params, lam=1.0, reduce=None):
    """Two backward passes (KL first, keeping the graph; then CE) and the projected CE gradients.

    Scaling both losses by the same s (GradScaler) scales the result by s: the
    projection is scale-invariant, so amp only needs the scaler to unscale.
    ``reduce`` (data parallel) maps local gradients to the global batch's, so that
    the projection sees the same two gradients on every process.
    """
    kl_grads = torch.autograd.grad(kl_loss, params, retain_graph=True, allow_unused=True)
    ce_grads = torch.autograd.grad(ce_loss, params, allow_unused=True)
    if reduce is not None:
        kl_grads, ce_grads = reduce(kl_grads), reduce(ce_grads)
    return project_conflicting(ce_grads, kl_grads, lam)
