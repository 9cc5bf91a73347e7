"""Generation speed: a decoder-only Transformer with and without its key/value cache, beside
an LSTM's O(1) step.

Writing token t, a causal Transformer without a cache runs its whole prefix again (t
positions, each attending to all earlier ones: O(t) work per layer for the new token, O(t^2)
in attention); with the cache it computes the new position's query, key and value only and
attends to the stored keys and values (O(t) in attention, O(1) elsewhere). A recurrent net
carries a fixed-size state: every token costs the same.

Each candidate writes `--new-tokens` tokens (default 512) after a one-token prompt, greedily,
batch 1, as `rnnzoo sample` does; the timing is the median of `--rounds` interleaved rounds.
The Transformer is the nanoGPT CPU size (4 layers, 4 heads, 128 wide) with room for the whole
sequence (max_positions = new tokens + 1), so neither path crops or slides its window.

    python scripts/bench_kv_cache.py              # prints a markdown table and the cache's speed-up
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from rnnzoo.api import create_model

VOCAB = 65  # tinyshakespeare's characters


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


class Generator:
    """embedding -> model -> linear head, decoding greedily with or without carried state."""

    def __init__(self, body: nn.Module, width: int, carry_state: bool) -> None:
        torch.manual_seed(0)
        self.embed, self.body = nn.Embedding(VOCAB, 128), body.eval()
        self.head = nn.Linear(width, VOCAB)
        self.carry_state = carry_state

    @torch.no_grad()
    def __call__(self, new_tokens: int) -> list[int]:
        ids = torch.zeros(1, 1, dtype=torch.long)  # (1, 1): the prompt
        features, state = self.body(self.embed(ids), None, None)  # (1, 1, H)
        for _ in range(new_tokens):
            token = self.head(features[:, -1]).argmax(-1, keepdim=True)  # (1, 1)
            ids = torch.cat([ids, token], dim=1)  # (1, t)
            if self.carry_state:  # one step from the carried state (KV cache / recurrent state)
                features, state = self.body(self.embed(token), None, state)
            else:  # the whole prefix again
                features, _ = self.body(self.embed(ids), None, None)
        return ids[0].tolist()


def candidates(new_tokens: int) -> dict[str, Generator]:
    transformer = create_model("transformer", shape="decoder", input_size=128, d_model=128, num_heads=4,
                               num_layers=4, dropout=0.0, max_positions=new_tokens + 1, positions="learned",
                               norm="pre", activation="gelu")
    lstm = create_model("lstm", input_size=128, hidden_size=512)
    return {"transformer, no cache": Generator(transformer, 128, carry_state=False),
            "transformer, KV cache": Generator(transformer, 128, carry_state=True),
            "lstm 512, state carried": Generator(lstm, 512, carry_state=True)}


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    runs = candidates(args.new_tokens)
    full = runs["transformer, no cache"](args.new_tokens)
    cached = runs["transformer, KV cache"](args.new_tokens)
    assert full == cached, "cached decoding must write exactly the tokens full decoding writes"
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):  # interleaved: machine noise hits every candidate alike
        for name, generate in runs.items():
            seconds[name].append(timed(lambda: generate(args.new_tokens)))
    speed = {name: args.new_tokens / statistics.median(times) for name, times in seconds.items()}
    print(f"{args.new_tokens} new tokens, batch 1, {args.threads} thread(s), median of {args.rounds} rounds\n")
    print("| generator | tokens/s |\n|---|---|")
    for name, tokens_per_second in speed.items():
        print(f"| {name} | {tokens_per_second:,.0f} |")
    ratio = speed["transformer, KV cache"] / speed["transformer, no cache"]
    print(f"\nKV cache speed-up: {ratio:.1f}x (target >= 5x); the tokens written are identical")


if __name__ == "__main__":
    main()
