"""Decoding: turning a model's next-token logits into token ids.

    sample_next(logits, generator, temperature, top_k, top_p)   one id per row, (B, V) -> (B,)
    filter_logits(logits, top_k, top_p)                         the logits sampling draws from

Three knobs, applied in this order (as in HuggingFace's `generate` and nanoGPT's `sample.py`):

* temperature T: logits / T. T < 1 sharpens the distribution, T > 1 flattens it; T = 0 is
  greedy (argmax), the limit of T -> 0.
* top-k (Fan et al. 2018): keep the k most likely tokens; top_k = 1 is greedy.
* top-p, nucleus sampling (Holtzman et al. 2020): keep the smallest set of most likely
  tokens whose probabilities sum to at least p; the rest of the tail, which is where
  degenerate text comes from, is never drawn.

Every draw goes through the `torch.Generator` given, never the global RNG, so a seed
reproduces a sample and sampling during training leaves the training run's randomness alone.
Shared by generation (`rnnzoo sample`) and translation.

Search, for encoder-decoders (the contract in `rnnzoo.nn.encoder_decoder`):

    max_target_lengths(source_lengths, ratio, offset, cap)   how long each output may grow, (B,)
    greedy_search(model, source, source_lengths, max_lengths, bos, eos, banned)
    beam_search(model, source, source_lengths, max_lengths, bos, eos, beam_size,
                length_penalty, banned)                       both -> Hypotheses

A translation y = (y_1 .. y_T, <eos>) scores log p(y | x) = sum_t log p(y_t | y_<t, x).
Finding the best y exactly is intractable (V^T sequences), so we search:

* greedy: take the most likely token at every step. Cheap, but one early choice that looks
  good can force a bad continuation.
* beam search (as in Sutskever et al. 2014, Bahdanau et al. 2015): keep the K best prefixes
  ("hypotheses") at every step; extend each by every token, keep the K best of the K * V
  candidates. K = 1 is greedy; K large enough to hold every prefix is exhaustive search.
  A hypothesis that emits <eos> (or reaches its length limit) is finished and stays in the
  beam unchanged. At the end the winner maximises score / lp(length) with GNMT's length
  penalty lp(n) = ((5 + n) / 6) ** alpha (Wu et al. 2016): raw log-probability favours short
  outputs, since every token adds a negative term; alpha = 0 turns the penalty off.

All sentences of a batch are searched at once: the memory is copied K times (B * K rows, the
K hypotheses of sentence b in rows b*K .. b*K+K-1) and after every step the rows are
reordered to follow the surviving hypotheses (`Memory.select`, `model.reorder_cache`).
Tokens in `banned` (pad, bos, mask, ...) get probability 0: they are never produced, and
the other tokens' probabilities are renormalised without them. Scores are float32.
Put the model in eval mode first (dropout), as for any evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .nn.encoder_decoder import EncoderDecoder
from .registry import help_field


@dataclass
class SampleOptions:
    """`rnnzoo sample`'s own numbers (configs/sample.yaml), typed and range-checked as every
    registered config is (`rnnzoo.registry.typed`): a bad one is one line naming it."""

    max_new_tokens: int = help_field(500, "tokens to sample", ge=1)
    temperature: float = help_field(1.0, "< 1 sharper, > 1 more varied, 0 greedy", ge=0)
    top_k: int | None = help_field(None, "keep only the k most likely tokens (1: greedy)", ge=1)
    top_p: float | None = help_field(None, "keep the smallest set of tokens whose probability reaches p", gt=0, le=1)
    seed: int = help_field(0, "seed of the draws", unbounded=True)


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """`logits` (B, V) with the tokens outside top-k and outside the nucleus set to -inf."""
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        k = min(int(top_k), logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(-1) - probs  # (B, V): mass of the more likely tokens
        # a token stays while the mass before it is still short of p: the smallest set reaching p
        drop_sorted = before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Draw one token id per row from `logits` (B, V); returns (B,) long ids.

    temperature 0 (or top_k 1) is greedy decoding. `generator` must live on the logits'
    device; None uses torch's global generator.
    """
    if logits.dim() != 2:
        raise ValueError(f"sample_next takes (B, V) logits, got shape {tuple(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0 or top_k == 1:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


# --- search for encoder-decoders ---------------------------------------------------------
@dataclass
class Hypotheses:
    """The output of a search, one entry per source sentence.

    tokens: the output ids, without <bos> and without the final <eos>;
    scores: their total log-probability, log p(<eos>) included when <eos> was emitted (a
        sentence emitted <eos> exactly when len(tokens) is below its max length);
    attention: per sentence a (steps, S_i) tensor of weights over its S_i real source tokens,
        one row per emitted token (<eos> included), or None for models without attention.
    """

    tokens: list[list[int]]
    scores: list[float]
    attention: list[Tensor] | None


def max_target_lengths(source_lengths: Tensor, ratio: float, offset: int, cap: int | None = None) -> Tensor:
    """The longest output allowed per sentence: ceil(ratio * source length) + offset, at least 1
    and at most `cap` (steps, <eos> included; OpenNMT's -max_length, fairseq's --max-len-b bound).

    source_lengths (B,) -> (B,) long. A limit is needed because a model may never emit <eos>;
    the cap, because a ratio of a 20,000-token source is still 30,000 steps.
    """
    scaled = source_lengths.double() * ratio  # (B,)
    # 1.1 * 10 is 11.000000000000002 in floating point: without the slack ceil would say 12
    limits = torch.ceil(scaled - 1e-9).long() + offset  # (B,)
    return limits.clamp(min=1, max=cap)


def _log_probs(logits: Tensor, banned: Sequence[int]) -> Tensor:
    """Next-token log-probabilities (..., V) in float32, with the banned ids at -inf.

    Banning before the softmax renormalises over the allowed tokens, so the scores stay the
    log-probabilities of the distribution we actually search.
    """
    logits = logits.float()
    if len(banned):
        logits = logits.clone()
        logits[..., list(banned)] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


def _check_inputs(source: Tensor, source_lengths: Tensor, max_lengths: Tensor) -> None:
    batch = source.shape[0]
    if source.dim() != 2 or source_lengths.shape != (batch,) or max_lengths.shape != (batch,):
        raise ValueError(f"expected source (B, S), source_lengths (B,) and max_lengths (B,), got "
                         f"{tuple(source.shape)}, {tuple(source_lengths.shape)}, "
                         f"{tuple(max_lengths.shape)}")
    if batch and int(max_lengths.min()) < 1:
        raise ValueError(f"max_lengths must be >= 1, got {max_lengths.tolist()}")


def _hypotheses(tokens: Tensor, lengths: Tensor, ended: Tensor, scores: Tensor,
                attention: Tensor | None, source_lengths: Tensor) -> Hypotheses:
    """Cut the padded search results down to each sentence's own output.

    tokens (B, T) with junk after each row's `lengths` (B,) emitted steps; `ended` (B,) says
    whether the last emitted token is <eos> (then dropped from the tokens); attention (B, T, S).
    """
    outputs, weights = [], []
    for b, (length, with_eos) in enumerate(zip(lengths.tolist(), ended.tolist())):
        outputs.append(tokens[b, :length - int(with_eos)].tolist())
        if attention is not None:
            weights.append(attention[b, :length, :int(source_lengths[b])].float().cpu())  # (steps, S_b)
    return Hypotheses(outputs, scores.tolist(), weights if attention is not None else None)


def _stack_attention(steps: list[Tensor | None]) -> Tensor | None:
    """The per-step attention (N, S) stacked to (N, T, S), or None if the model gives none."""
    if not steps or steps[0] is None:
        return None
    return torch.stack(steps, dim=1)  # (N, T, S)


@torch.no_grad()
def greedy_search(model: EncoderDecoder, source: Tensor, source_lengths: Tensor, max_lengths: Tensor,
                  bos: int, eos: int, banned: Sequence[int] = ()) -> Hypotheses:
    """Greedy decoding: y_t = argmax_v log p(v | y_<t, x) at every step, all rows at once.

    Algorithm: encode once; feed <bos>; at each step take the argmax token of every unfinished
    row and add its log-probability to the row's score. A row finishes when it emits <eos> or
    has emitted max_lengths[b] tokens; finished rows are masked (they emit nothing, their score
    is frozen). Stops as soon as every row is finished.

    source (B, S) right-padded ids, source_lengths (B,), max_lengths (B,) (see
    `max_target_lengths`); `banned` ids are never produced.
    """
    _check_inputs(source, source_lengths, max_lengths)
    batch, device = source.shape[0], source.device
    if batch == 0:
        return Hypotheses([], [], None)
    memory = model.encode(source, source_lengths)
    cache = model.start(memory)
    max_lengths = max_lengths.to(device)
    previous = torch.full((batch,), bos, dtype=torch.long, device=device)  # (B,)
    scores = torch.zeros(batch, device=device)  # (B,) float32
    lengths = torch.zeros(batch, dtype=torch.long, device=device)  # (B,) tokens emitted so far
    ended = torch.zeros(batch, dtype=torch.bool, device=device)  # (B,) last token was <eos>
    finished = torch.zeros(batch, dtype=torch.bool, device=device)  # (B,)
    steps, weights = [], []
    while not finished.all():
        logits, cache, attention = model.decode_step(previous, memory, cache)  # (B, V), .., (B, S)
        best_logprob, token = _log_probs(logits, banned).max(dim=-1)  # (B,), (B,)
        alive = ~finished  # (B,) rows that emit a token this step
        scores = scores + torch.where(alive, best_logprob, torch.zeros_like(best_logprob))
        token = torch.where(alive, token, torch.full_like(token, eos))  # finished: a placeholder
        lengths = lengths + alive.long()
        ended = ended | (alive & (token == eos))
        finished = finished | (token == eos) | (lengths >= max_lengths)
        steps.append(token)
        weights.append(attention)
        previous = token
    tokens = torch.stack(steps, dim=1)  # (B, T)
    return _hypotheses(tokens, lengths, ended, scores, _stack_attention(weights), source_lengths)


def _beam_candidates(logprobs: Tensor, scores: Tensor, finished: Tensor, eos: int
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """One beam step's choice: the K best extensions per sentence among K * V candidates.

    logprobs (B, K, V), scores (B, K), finished (B, K) -> new scores, back-pointers (the beam
    each survivor extends) and the appended tokens, all (B, K).
    A finished hypothesis has one move only, "stay finished": token <eos> at cost 0 (nothing
    is really appended; its length stays). Giving it V moves would fill the beam with copies.
    """
    beam, vocab = logprobs.shape[1:]
    stay = torch.full_like(logprobs[0, 0], float("-inf"))  # (V,)
    stay[eos] = 0.0
    logprobs = torch.where(finished[..., None], stay, logprobs)  # (B, K, V)
    candidates = scores[..., None] + logprobs  # (B, K, V): score of prefix + next token
    top_scores, flat = candidates.flatten(1).topk(beam, dim=-1)  # (B, K) over K * V
    return top_scores, flat // vocab, flat % vocab


def _length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's lp(n) = ((5 + n) / 6) ** alpha (Wu et al. 2016); 1 for alpha = 0."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: EncoderDecoder, source: Tensor, source_lengths: Tensor, max_lengths: Tensor,
                bos: int, eos: int, beam_size: int, length_penalty: float = 1.0,
                banned: Sequence[int] = ()) -> Hypotheses:
    """Beam search with K = beam_size hypotheses per sentence, all sentences batched.

    Algorithm: encode once and copy the memory K times (B * K rows). Scores (B, K) start at 0
    for beam 0 and -inf for the others, so the first step extends one <bos> prefix instead of
    K identical ones. Each step: candidates = scores + log p(next token) (B, K, V); finished
    hypotheses may only "stay finished" (see `_beam_candidates`); keep the K best per sentence;
    follow the back-pointers to reorder the cache, token history and attention history. A
    hypothesis finishes on <eos>, on reaching its sentence's max length, or when its score is
    -inf (fewer than K possible hypotheses). Loop until every hypothesis is finished, then per
    sentence return the one maximising score / lp(length), length counting <eos>
    (`length_penalty` is GNMT's alpha; 0 ranks by raw log-probability). The returned score is
    the raw log-probability. beam_size=1 gives exactly `greedy_search`'s result.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    _check_inputs(source, source_lengths, max_lengths)
    batch, device, beam = source.shape[0], source.device, beam_size
    if batch == 0:
        return Hypotheses([], [], None)
    copies = torch.arange(batch, device=device).repeat_interleave(beam)  # (B*K,): row b*K+k is b
    memory = model.encode(source, source_lengths)
    cache = model.reorder_cache(model.start(memory), copies)
    memory = memory.select(copies)
    limits = max_lengths.to(device).repeat_interleave(beam)  # (B*K,)
    offsets = torch.arange(batch, device=device)[:, None] * beam  # (B, 1): first row of sentence b

    scores = torch.full((batch, beam), float("-inf"), device=device)  # (B, K)
    scores[:, 0] = 0.0
    previous = torch.full((batch * beam,), bos, dtype=torch.long, device=device)  # (B*K,)
    lengths = torch.zeros(batch * beam, dtype=torch.long, device=device)  # (B*K,) tokens emitted
    ended = torch.zeros(batch * beam, dtype=torch.bool, device=device)  # (B*K,) last one is <eos>
    finished = scores.flatten().isinf()  # (B*K,): the empty beams start finished
    tokens = torch.zeros(batch * beam, 0, dtype=torch.long, device=device)  # (B*K, T)
    history: Tensor | None = None  # (B*K, T, S) attention of every emitted step

    while not finished.all():
        logits, cache, attention = model.decode_step(previous, memory, cache)  # (B*K, V), .., (B*K, S)
        logprobs = _log_probs(logits, banned).view(batch, beam, -1)  # (B, K, V)
        scores, origin, token = _beam_candidates(logprobs, scores, finished.view(batch, beam), eos)
        rows = (offsets + origin).flatten()  # (B*K,): the row each survivor extends
        token = token.flatten()  # (B*K,)
        # every per-hypothesis tensor follows its hypothesis to its new row
        was_finished = finished.index_select(0, rows)  # (B*K,)
        grows = ~was_finished  # (B*K,) hypotheses that really appended `token`
        lengths = lengths.index_select(0, rows) + grows.long()
        ended = ended.index_select(0, rows) | (grows & (token == eos))
        finished = was_finished | (token == eos) | (lengths >= limits) | scores.flatten().isinf()
        tokens = torch.cat([tokens.index_select(0, rows), token[:, None]], dim=1)  # (B*K, T+1)
        if attention is not None:
            step = attention.index_select(0, rows)[:, None]  # (B*K, 1, S): computed by the parent
            history = step if history is None else torch.cat([history.index_select(0, rows), step], 1)
        cache = model.reorder_cache(cache, rows)
        previous = token
    return _best_hypotheses(scores, lengths, ended, tokens, history, length_penalty, source_lengths)


def _best_hypotheses(scores: Tensor, lengths: Tensor, ended: Tensor, tokens: Tensor,
                     history: Tensor | None, alpha: float, source_lengths: Tensor) -> Hypotheses:
    """Per sentence, the finished hypothesis with the best score / lp(length).

    scores (B, K); lengths, ended (B*K,); tokens (B*K, T); history (B*K, T, S) or None.
    """
    batch, beam = scores.shape
    normalised = scores / _length_penalty(lengths.view(batch, beam), alpha)  # (B, K)
    best = normalised.argmax(dim=-1)  # (B,)
    rows = torch.arange(batch, device=scores.device) * beam + best  # (B,)
    return _hypotheses(tokens.index_select(0, rows), lengths.index_select(0, rows),
                       ended.index_select(0, rows), scores.flatten().index_select(0, rows),
                       None if history is None else history.index_select(0, rows), source_lengths)
