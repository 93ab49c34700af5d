"""DIN-style target attention over behaviour sequences.

For a sequence ``x_1..x_L`` (item vectors, ``d``-dim) and a target item vector ``e``, position
``l`` gets the score

    ``s_l = w_2 · ReLU(W_1 [x_l ‖ e ‖ x_l ⊙ e ‖ x_l − e] + b_1)``

and the pooled interest is ``r = Σ_l α_l x_l`` with ``α = softmax(s)`` over the non-padding
positions. An all-padding sequence has ``α = 0`` and ``r = 0`` (not NaN). The output layer has
no bias: a constant added to every ``s_l`` cancels in the softmax, so it would never learn.

``W_1 = [W_x ‖ W_e ‖ W_p ‖ W_d]`` (four ``H × d`` blocks) acts on the concatenation without
building it: ``W_1 [x ‖ e ‖ x⊙e ‖ x−e] = (W_x + W_d) x + W_p (x ⊙ e) + (W_e − W_d) e``, where
the last term is computed once per sequence instead of once per position. The weights may be
given per "head" ``t`` (DTRN's task-specific generated weights) and per behaviour ``b``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def target_attention(
    seq: Tensor, mask: Tensor, target: Tensor, w1: Tensor, b1: Tensor, w2: Tensor
) -> Tensor:
    """Pooled interests of ``T`` attention heads over ``N_b`` behaviour sequences.

    Args:
        seq: ``(P, N_b, L, d)`` item vectors of the sequences.
        mask: ``(P, N_b, L)`` bool, True at real (non-padding) positions.
        target: ``(P, d)`` target item vectors.
        w1: ``(T, N_b, H, 4d)`` first-layer weights over ``[x ‖ e ‖ x⊙e ‖ x−e]``.
        b1: ``(T, N_b, H)`` first-layer biases.
        w2: ``(H,)`` output weights (shared by all heads and behaviours).

    Returns:
        ``(P, T, N_b, d)``: ``r[p, t, b] = Σ_l α_{p,t,b,l} seq[p, b, l]``.
    """
    p, n_b, length, d = seq.shape
    t, h = w1.shape[0], w1.shape[2]
    wx, we, wp, wd = w1.split(d, dim=-1)
    # Behaviour-major layout (N_b, P, L, ·) so that one bmm per behaviour needs no permute.
    per_position = torch.cat([wx + wd, wp], dim=-1).permute(1, 3, 0, 2).reshape(n_b, 2 * d, t * h)
    seq_b = seq.transpose(0, 1)
    x2 = torch.cat([seq_b, seq_b * target[None, :, None, :]], dim=-1)  # (N_b, P, L, 2d)
    hidden = torch.bmm(x2.reshape(n_b, p * length, 2 * d), per_position)
    hidden = hidden.view(n_b, p, length, t, h)
    per_sequence = torch.einsum("pd,tbhd->bpth", target, we - wd) + b1.transpose(0, 1)[:, None]
    hidden = torch.relu_(hidden.add_(per_sequence.unsqueeze(2)))
    scores = (hidden @ w2).permute(1, 3, 0, 2)  # (P, T, N_b, L)
    m = mask.unsqueeze(1)
    scores = scores.masked_fill(~m, torch.finfo(scores.dtype).min)
    alpha = torch.softmax(scores, dim=-1) * m
    return torch.einsum("ptbl,pbld->ptbd", alpha, seq)


class TargetAttention(nn.Module):
    """The shared attention MLP (``4d → hidden → 1``, ReLU), one set of weights for all tasks
    and behaviours; :attr:`first` holds ``W_1, b_1`` (DTRN's ``W_0``), :attr:`second` ``w_2``.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.dim = dim
        self.hidden = hidden
        self.first = nn.Linear(4 * dim, hidden)
        self.second = nn.Linear(hidden, 1, bias=False)

    def forward(self, seq: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        """``(P, N_b, L, d)``, ``(P, N_b, L)``, ``(P, d)`` → interests ``(P, N_b, d)``."""
        n_b = seq.shape[1]
        w1 = self.first.weight.expand(1, n_b, -1, -1)
        b1 = self.first.bias.expand(1, n_b, -1)
        return target_attention(seq, mask, target, w1, b1, self.second.weight[0]).squeeze(1)
