"""Small layers the tasks put around models."""

from __future__ import annotations

from torch import Tensor, nn


class OneHot(nn.Module):
    """Token ids (B, T) -> one-hot float vectors (B, T, num_classes): no parameters to learn.

    The synthetic tasks feed symbols this way, as the papers that define them do, so a
    model's memory is tested rather than an embedding's.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, ids: Tensor) -> Tensor:
        return nn.functional.one_hot(ids, self.num_classes).float()  # (B, T, C)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


class ScalarHead(nn.Module):
    """Features (B, T, F) -> one real number per step (B, T)."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features).squeeze(-1)  # (B, T)
