"""A linear-chain conditional random field over per-token scores (Lafferty et al. 2001).

As the output layer of a BiLSTM tagger (Huang et al. 2015, "Bidirectional LSTM-CRF Models for
Sequence Tagging"): the network gives emission scores E[t, y] for each tag y at each token t,
the CRF adds learned transition scores A[y', y], plus start and end scores, and scores a whole
tag sequence as

    s(y) = start[y_1] + sum_t E[t, y_t] + sum_{t>1} A[y_{t-1}, y_t] + end[y_T]

    log p(y | x) = s(y) - log sum_{y'} exp s(y')

The partition sum runs over K^T sequences; the forward algorithm computes it in O(T K^2), and
Viterbi finds the best sequence in the same time. Padding is handled with the mask: a padded
step leaves the running scores unchanged, so a sentence scores the same alone or in a batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CRF(nn.Module):
    """Transition, start and end scores over `num_tags` tags; log-likelihood and Viterbi decoding."""

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (K, K): from row to column
        self.start = nn.Parameter(torch.zeros(num_tags))  # (K,)
        self.end = nn.Parameter(torch.zeros(num_tags))  # (K,)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """s(y) of the given tags: emissions (B, T, K), tags (B, T), mask (B, T) -> (B,).

        Every sequence must have at least one real step, and the mask must be a prefix.
        """
        mask = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
        moved = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last = tags.gather(1, (mask.sum(1).long() - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return (self.start[tags[:, 0]] + (emitted * mask).sum(1) + (moved * mask[:, 1:]).sum(1)
                + self.end[last])

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log sum_y exp s(y) by the forward algorithm: (B, T, K), (B, T) -> (B,)."""
        alpha = self.start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            # alpha'[j] = logsumexp_i (alpha[i] + A[i, j]) + E[t, j]
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t:t + 1], step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """log p(tags | emissions) per sequence: (B,)."""
        return self.score(emissions, tags, mask) - self.log_partition(emissions, mask)

    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """The best tag sequences by Viterbi: (B, T, K), (B, T) -> (B, T) tags, 0 at pads."""
        B, T, K = emissions.shape
        best = self.start + emissions[:, 0]  # (B, K)
        pointers = []
        for t in range(1, T):
            candidates = best.unsqueeze(2) + self.transitions  # (B, K from, K to)
            top, argtop = candidates.max(dim=1)  # (B, K)
            real = mask[:, t:t + 1]  # (B, 1)
            best = torch.where(real, top + emissions[:, t], best)
            # at a pad, each tag points to itself, so the backtrace passes pads through unchanged
            pointers.append(torch.where(real, argtop, torch.arange(K, device=emissions.device).expand(B, K)))
        tag = (best + self.end).argmax(1)  # (B,)
        path = [tag]
        for argtop in reversed(pointers):
            tag = argtop.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        tags = torch.stack(path[::-1], dim=1)  # (B, T)
        return tags.masked_fill(~mask, 0)
