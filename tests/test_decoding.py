"""Search (greedy, beam) for encoder-decoders and the translation metrics, on a tiny toy model
that implements the encoder-decoder contract with random weights: beam 1 is greedy, a wide
enough beam is exhaustive search, scores are the teacher-forced log-probabilities, padding
and batching change nothing; BLEU and chrF equal the sacrebleu command line."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from rnnzoo.decoding import Hypotheses, beam_search, greedy_search, max_target_lengths
from rnnzoo.metrics import corpus_bleu, corpus_chrf, translation_scores
from rnnzoo.nn.encoder_decoder import EncoderDecoder, Memory

torch.set_num_threads(1)

PAD, UNK, BOS, EOS, MASK = 0, 1, 2, 3, 4
VOCAB = 8  # 5, 6, 7 are content ids
BANNED = (PAD, BOS, MASK)
ALLOWED = (UNK, EOS, 5, 6, 7)


class ToyTranslator(EncoderDecoder):
    """A GRU decoder with dot-product attention over embedded source tokens.

    The initial state comes from the mean of the real source embeddings; the cache is
    (state, previous context). Large output weights make the distributions peaked enough
    that greedy and beam search disagree.
    """

    def __init__(self, seed: int = 0, hidden: int = 12, attend: bool = True):
        super().__init__()
        self.source_vocab_size = self.target_vocab_size = VOCAB
        self.attend = attend
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.source_embedding = nn.Embedding(VOCAB, hidden)
            self.target_embedding = nn.Embedding(VOCAB, hidden)
            self.bridge = nn.Linear(hidden, hidden)
            self.cell = nn.GRUCell(2 * hidden, hidden)
            self.output = nn.Linear(2 * hidden, VOCAB)
            with torch.no_grad():
                self.output.weight.mul_(3.0)
        self.eval()

    def encode(self, source: Tensor, source_lengths: Tensor) -> Memory:
        mask = torch.arange(source.shape[1])[None] < source_lengths[:, None]  # (B, S)
        states = self.source_embedding(source) * mask[..., None]  # (B, S, H), 0 at pads
        return Memory(states, mask)

    def start(self, memory: Memory):
        mean = memory.states.sum(1) / memory.mask.sum(1, keepdim=True)  # (B, H)
        state = torch.tanh(self.bridge(mean))
        return state, torch.zeros_like(state)

    def decode_step(self, previous: Tensor, memory: Memory, cache):
        state, context = cache
        state = self.cell(torch.cat([self.target_embedding(previous), context], -1), state)  # (B, H)
        scores = (memory.states @ state[:, :, None]).squeeze(-1)  # (B, S)
        weights = torch.softmax(scores.masked_fill(~memory.mask, float("-inf")), -1)  # (B, S)
        context = (weights[:, None] @ memory.states).squeeze(1)  # (B, H)
        logits = self.output(torch.cat([state, context], -1))  # (B, V)
        return logits, (state, context), weights if self.attend else None


def batch_of(*sentences: list[int]) -> tuple[Tensor, Tensor]:
    """Right-padded source ids (B, S) and lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sentences])
    source = torch.full((len(sentences), int(lengths.max())), PAD)
    for b, sentence in enumerate(sentences):
        source[b, :len(sentence)] = torch.tensor(sentence)
    return source, lengths


SOURCES = batch_of([5, 6, 7, 5, 1], [7, 7], [6, 5, 6, 5, 7, 6, 7], [1, 6, 5])


@torch.no_grad()
def teacher_forced(model: ToyTranslator, sentence: list[int], outputs: list[list[int]],
                   banned=BANNED) -> Tensor:
    """log p(output | sentence) of each output (ids including any final <eos>), computed by
    feeding the output through `decode_step` one token at a time, independently of search."""
    source, lengths = batch_of(*[sentence] * len(outputs))
    memory = model.encode(source, lengths)
    cache = model.start(memory)
    longest = max(len(o) for o in outputs)
    target = torch.tensor([o + [EOS] * (longest - len(o)) for o in outputs])  # (N, T)
    real = torch.tensor([[t < len(o) for t in range(longest)] for o in outputs])  # (N, T)
    previous, total = torch.full((len(outputs),), BOS), torch.zeros(len(outputs))
    for t in range(longest):
        logits, cache, _ = model.decode_step(previous, memory, cache)
        logits = logits.float().clone()
        logits[:, list(banned)] = float("-inf")
        logprobs = torch.log_softmax(logits, -1).gather(1, target[:, t:t + 1]).squeeze(1)  # (N,)
        total += torch.where(real[:, t], logprobs, torch.zeros_like(logprobs))
        previous = target[:, t]
    return total


def with_eos(result: Hypotheses, b: int, max_lengths: Tensor) -> list[int]:
    """The emitted ids of sentence b: its tokens, plus <eos> if it stopped before the limit."""
    tokens = result.tokens[b]
    return tokens + [EOS] if len(tokens) < int(max_lengths[b]) else tokens


# --- search ---------------------------------------------------------------------------------
def test_max_target_lengths():
    lengths = torch.tensor([0, 3, 10])
    assert max_target_lengths(lengths, 1.1, 0).tolist() == [1, 4, 11]  # not 12: no float slop
    assert max_target_lengths(lengths, 1.5, 2).tolist() == [2, 7, 17]
    assert max_target_lengths(lengths, 0.0, 0).tolist() == [1, 1, 1]


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_beam_of_one_is_greedy(seed):
    model, (source, lengths) = ToyTranslator(seed=seed), SOURCES
    limits = max_target_lengths(lengths, 1.5, 2)
    greedy = greedy_search(model, source, lengths, limits, BOS, EOS, BANNED)
    beam = beam_search(model, source, lengths, limits, BOS, EOS, beam_size=1, banned=BANNED)
    assert beam.tokens == greedy.tokens
    assert beam.scores == greedy.scores
    for a, b in zip(beam.attention, greedy.attention):
        assert torch.equal(a, b)
    assert any(len(t) < int(m) for t, m in zip(greedy.tokens, limits))  # some rows end on <eos>


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 10])  # seeds where a slip (K copies of <bos>, lp without <eos>) shows
def test_wide_beam_is_exhaustive_search(seed, alpha):
    model = ToyTranslator(seed=seed)
    sentences = [[5, 6, 7, 5], [7], [6, 6, 5]]
    source, lengths = batch_of(*sentences)
    content = [t for t in ALLOWED if t != EOS]
    # every output of at most 3 tokens: ending in <eos>, or 3 tokens without it
    outputs = [list(p) + [EOS] for n in range(3) for p in itertools.product(content, repeat=n)]
    outputs += [list(p) for p in itertools.product(content, repeat=3)]
    assert len(outputs) == 85
    limits = torch.full((3,), 3)
    result = beam_search(model, source, lengths, limits, BOS, EOS, beam_size=len(outputs),
                         length_penalty=alpha, banned=BANNED)
    for b, sentence in enumerate(sentences):
        scores = teacher_forced(model, sentence, outputs)  # (85,)
        penalty = ((5 + torch.tensor([len(o) for o in outputs], dtype=torch.float)) / 6) ** alpha
        best = int((scores / penalty).argmax())
        assert result.tokens[b] == [t for t in outputs[best] if t != EOS]
        assert result.scores[b] == pytest.approx(float(scores[best]), abs=1e-5)


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_beam_scores_are_teacher_forced_log_probs(seed):
    model, (source, lengths) = ToyTranslator(seed=seed), SOURCES
    limits = max_target_lengths(lengths, 1.0, 3)
    sentences = [source[b, :n].tolist() for b, n in enumerate(lengths.tolist())]
    for alpha in (0.0, 1.0):
        result = beam_search(model, source, lengths, limits, BOS, EOS, beam_size=3,
                             length_penalty=alpha, banned=BANNED)
        for b, sentence in enumerate(sentences):
            expected = teacher_forced(model, sentence, [with_eos(result, b, limits)])
            assert result.scores[b] == pytest.approx(float(expected[0]), abs=1e-5)


def test_rows_stop_at_their_own_max_length_and_banned_ids_never_appear():
    model, (source, lengths) = ToyTranslator(seed=5), SOURCES
    limits = torch.tensor([1, 3, 5, 2])
    banned = (*BANNED, EOS, 5)  # without <eos> every row runs to its limit
    for result in (greedy_search(model, source, lengths, limits, BOS, EOS, banned),
                   beam_search(model, source, lengths, limits, BOS, EOS, 3, banned=banned)):
        assert [len(t) for t in result.tokens] == limits.tolist()
        assert all(t in (UNK, 6, 7) for tokens in result.tokens for t in tokens)
        assert [a.shape[0] for a in result.attention] == limits.tolist()


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_batch_equals_each_sentence_alone(search):
    model, (source, lengths) = ToyTranslator(seed=6), SOURCES
    limits = max_target_lengths(lengths, 1.5, 1)

    def run(src, lens, lims):
        if search == "greedy":
            return greedy_search(model, src, lens, lims, BOS, EOS, BANNED)
        return beam_search(model, src, lens, lims, BOS, EOS, beam_size=3, banned=BANNED)

    together = run(source, lengths, limits)
    for b, n in enumerate(lengths.tolist()):
        alone = run(source[b:b + 1, :n], lengths[b:b + 1], limits[b:b + 1])
        assert alone.tokens[0] == together.tokens[b]
        assert alone.scores[0] == pytest.approx(together.scores[b], abs=1e-5)
        assert torch.allclose(alone.attention[0], together.attention[b], atol=1e-6)


@pytest.mark.parametrize("beam_size", [None, 3])
def test_attention_follows_the_returned_hypothesis(beam_size):
    model, (source, lengths) = ToyTranslator(seed=3), SOURCES  # some rows end on <eos>, some not
    limits = max_target_lengths(lengths, 1.5, 2)
    if beam_size is None:
        result = greedy_search(model, source, lengths, limits, BOS, EOS, BANNED)
    else:
        result = beam_search(model, source, lengths, limits, BOS, EOS, beam_size, banned=BANNED)
    for b, n in enumerate(lengths.tolist()):
        emitted = with_eos(result, b, limits)
        weights = result.attention[b]
        assert weights.shape == (len(emitted), n)
        assert torch.allclose(weights.sum(-1), torch.ones(len(emitted)), atol=1e-5)
        # the weights are those of teacher forcing the returned output: reordered with the beams
        target_in = torch.tensor([[BOS, *emitted[:-1]]])
        _, forced = model(source[b:b + 1, :n], lengths[b:b + 1], target_in)  # (1, T, S)
        assert torch.allclose(weights, forced[0], atol=1e-5)


def test_models_without_attention_and_bad_beam_size():
    model, (source, lengths) = ToyTranslator(attend=False), SOURCES
    limits = torch.full((4,), 4)
    assert greedy_search(model, source, lengths, limits, BOS, EOS, BANNED).attention is None
    assert beam_search(model, source, lengths, limits, BOS, EOS, 2, banned=BANNED).attention is None
    with pytest.raises(ValueError, match="0"):
        beam_search(model, source, lengths, limits, BOS, EOS, beam_size=0)


# --- metrics --------------------------------------------------------------------------------
REFERENCES = ["The cat sat on the mat.", "It is raining today, isn't it?",
              "We'll meet at 10:30 in Zürich.", "Hello world!", "A quick brown fox jumps."]
HYPOTHESES = ["The cat sat on a mat.", "Today it is raining, isn't it?",
              "We will meet at 10:30 in Zurich.", "Hello world!", "The fast brown fox jumped."]


def test_bleu_and_chrf_equal_the_sacrebleu_command_line(tmp_path):
    cli = Path(sys.executable).parent / "sacrebleu"
    if not cli.exists():
        pytest.skip("no sacrebleu command line next to the interpreter")
    (tmp_path / "ref.txt").write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("\n".join(HYPOTHESES) + "\n", encoding="utf-8")
    done = subprocess.run([str(cli), str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"),
                           "-m", "bleu", "chrf", "-b", "-w", "4"],
                          capture_output=True, text=True, check=True, timeout=60)
    bleu, chrf = json.loads(done.stdout)  # -b with two metrics prints a JSON list of scores
    assert corpus_bleu(HYPOTHESES, REFERENCES) == pytest.approx(bleu, abs=1e-4)
    assert corpus_chrf(HYPOTHESES, REFERENCES) == pytest.approx(chrf, abs=1e-4)
    assert 0 < bleu < 100 and 0 < chrf < 100


def test_translation_scores_exact_match_and_errors():
    scores = translation_scores(HYPOTHESES, REFERENCES)
    assert set(scores) == {"bleu", "chrf", "exact"}
    assert scores["exact"] == pytest.approx(20.0)  # "Hello world!" only
    assert translation_scores(REFERENCES, REFERENCES) == pytest.approx({"bleu": 100.0, "chrf": 100.0,
                                                                        "exact": 100.0})
    assert translation_scores([], []) == {"bleu": 0.0, "chrf": 0.0, "exact": 0.0}
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        translation_scores(HYPOTHESES, REFERENCES[:-1])
