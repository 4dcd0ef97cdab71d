"""SSDG-R's two extra losses, as its official code computes them (docs/methods.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pairwise_distances(x: Tensor, eps: float = 1e-16) -> Tensor:
    """Euclidean distances between rows, from ||a||^2 - 2ab + ||b||^2 (clamped at 0). Zero
    distances stay exactly 0 with a finite gradient (the square root sees ``eps`` there)."""
    dot = x @ x.t()
    sq = dot.diag()
    d2 = F.relu(sq.unsqueeze(1) - 2 * dot + sq.unsqueeze(0))
    zero = (d2 == 0).to(d2.dtype)
    return torch.sqrt(d2 + zero * eps) * (1 - zero)


def triplet_labels(is_live: Tensor, domain: Tensor) -> Tensor:
    """The asymmetric grouping: every live face is class 0, spoofs of source domain d are d + 1,
    so live faces of all domains are pulled together and each domain's attacks kept apart."""
    return torch.where(is_live.bool(), torch.zeros_like(domain), domain + 1)


def asymmetric_triplet_loss(feature: Tensor, labels: Tensor, margin: float) -> Tensor:
    """Mean of relu(d(a, p) - d(a, n) + margin) over the triplets where it is positive, among all
    (a, p, n) with a, p, n distinct, label(a) = label(p) != label(n) (batch-all, not hardest)."""
    dist = pairwise_distances(feature)
    loss = dist.unsqueeze(2) - dist.unsqueeze(1) + margin  # [a, p, n]
    n = len(labels)
    distinct = ~torch.eye(n, dtype=torch.bool, device=feature.device)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    valid = (distinct.unsqueeze(2) & distinct.unsqueeze(1) & distinct.unsqueeze(0)
             & same.unsqueeze(2) & ~same.unsqueeze(1))
    loss = F.relu(loss * valid)
    hard = (loss > 1e-16).sum()
    return loss.sum() / (hard + 1e-16)


def live_adversarial_loss(domain_logits: Tensor, domain: Tensor) -> Tensor:
    """Cross-entropy of the discriminator's domain guess on live faces (behind the reversal)."""
    return F.cross_entropy(domain_logits, domain)
