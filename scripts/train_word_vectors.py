"""Word vectors anyone can rebuild offline: skip-gram with negative sampling (word2vec, Mikolov
et al. 2013, "Distributed Representations of Words and Phrases and their Compositionality")
trained on the reference corpora's training text, written in word2vec's text format (a
`COUNT DIM` header, then `word v1 ... vDIM` per line, most frequent word first), which
`task.pretrained_embeddings=PATH` reads.

    python scripts/train_word_vectors.py --out outputs/vectors/ref300.txt    # 300-dim, 5 epochs

The corpus (lower-cased, one sentence per line; SST-2 dev/test and every other dev/test split
are never read): PTB train (Mikolov's, `<unk>` and `N` as they are), SST-2 train sentences
(labels dropped), Multi30k train English (split at punctuation), CoNLL-2000 train words,
UD English EWT train forms, WNUT17 train words: 100,468 sentences, 1.86 M tokens of the
23,779 words seen twice or more. One thread: about 35 s an epoch on an idle core (3 minutes
for the defaults), 11 minutes on the shared 2-core machine of docs/results_vectors.md.

word2vec's recipe, vectorised: frequent words subsampled (keep with probability
sqrt(t / f) + t / f), the dynamic window (a pair at distance d kept with probability
(window - d + 1) / window, which is what drawing the window size uniformly gives), `negative`
noise words per pair from the unigram distribution to the 3/4 power, plain SGD with the
learning rate falling linearly to 0; the gradients of a batch of pairs are written with
`index_add_` (sparse updates, as word2vec's threads do). The input vectors are written.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PUNCTUATION = re.compile(r"[\w'-]+|[^\w\s]")


def column_words(path: Path, column: int, skip_comments: bool = False) -> Iterator[list[str]]:
    """Sentences of a one-token-per-line file (blank lines between sentences), column `column`."""
    sentence: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if skip_comments and line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if not fields:
            if sentence:
                yield sentence
            sentence = []
        elif not (skip_comments and not fields[0].isdigit()):  # UD: no ranges (1-2) or empty nodes (8.1)
            sentence.append(fields[column].lower())
    if sentence:
        yield sentence


def corpus(data: Path) -> Iterator[list[str]]:
    """The training sentences of the reference corpora, lower-cased and tokenized."""
    for line in (data / "ptb" / "ptb.train.txt").read_text().splitlines():
        yield line.split()
    for line in (data / "sst2" / "stsa.binary.train").read_text().splitlines():
        yield line.lower().split()[1:]
    for line in (data / "multi30k" / "train.en").read_text().splitlines():
        yield PUNCTUATION.findall(line.lower())
    yield from column_words(data / "conll2000" / "train.txt", 0)
    yield from column_words(data / "ud_english_ewt" / "en_ewt-ud-train.conllu", 1, skip_comments=True)
    yield from column_words(data / "wnut17" / "wnut17train.conll", 0)


def encode(sentences: list[list[str]], min_count: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(words most frequent first, their counts, (N,) token ids, (N,) sentence index of each)."""
    counts = Counter(word for sentence in sentences for word in sentence)
    words = [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]
    index = {w: i for i, w in enumerate(words)}
    ids, sentence_of = [], []
    for s, sentence in enumerate(sentences):
        kept = [index[w] for w in sentence if w in index]
        ids += kept
        sentence_of += [s] * len(kept)
    return words, np.array([counts[w] for w in words]), np.array(ids), np.array(sentence_of)


def epoch_pairs(ids: np.ndarray, sentence_of: np.ndarray, keep: np.ndarray, window: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(centers, contexts) of one epoch, shuffled: subsampled tokens, dynamic window, one sentence."""
    kept = rng.random(len(ids)) < keep[ids]
    ids, sentence_of = ids[kept], sentence_of[kept]
    centers, contexts = [], []
    for d in range(1, window + 1):
        same = sentence_of[:-d] == sentence_of[d:]
        near = same & (rng.random(len(same)) < (window - d + 1) / window)
        left, right = ids[:-d][near], ids[d:][near]
        centers += [left, right]
        contexts += [right, left]
    centers, contexts = np.concatenate(centers), np.concatenate(contexts)
    order = rng.permutation(len(centers))
    return centers[order], contexts[order]


def train(ids: np.ndarray, sentence_of: np.ndarray, counts: np.ndarray, args: argparse.Namespace) -> torch.Tensor:
    """The (V, dim) input vectors after `args.epochs` epochs of SGNS."""
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    V, D = len(counts), args.dim
    frequency = counts / counts.sum()
    keep = np.minimum(1.0, np.sqrt(args.subsample / frequency) + args.subsample / frequency)
    noise = torch.as_tensor(counts ** 0.75 / (counts ** 0.75).sum(), dtype=torch.float)
    w_in = (torch.rand(V, D) - 0.5) / D  # word2vec's init: inputs small, outputs 0
    w_out = torch.zeros(V, D)
    total, done, started = None, 0, time.perf_counter()
    for epoch in range(args.epochs):  # an epoch's pairs drawn when it starts: one epoch in memory
        centers, contexts = epoch_pairs(ids, sentence_of, keep, args.window, rng)
        total = total or len(centers) * args.epochs  # the learning rate's horizon, from the first epoch
        loss_sum, batches = 0.0, 0
        for start in range(0, len(centers), args.batch_size):
            lr = args.lr * max(1e-4, 1 - done / total)
            c = torch.as_tensor(centers[start:start + args.batch_size])  # (B,)
            o = torch.as_tensor(contexts[start:start + args.batch_size])  # (B,)
            n = torch.multinomial(noise, len(c) * args.negative, replacement=True).view(len(c), -1)  # (B, K)
            loss_sum += sgns_step(w_in, w_out, c, o, n, lr)
            batches += 1
            done += len(c)
        print(f"epoch {epoch + 1}: loss {loss_sum / batches:.4f}, {time.perf_counter() - started:.0f} s", flush=True)
    return w_in


def sgns_step(w_in: torch.Tensor, w_out: torch.Tensor, c: torch.Tensor, o: torch.Tensor, n: torch.Tensor,
              lr: float) -> float:
    """One SGD step of -log σ(u_o·v_c) - Σ_k log σ(-u_k·v_c), gradients by hand; returns the mean loss."""
    v, u, un = w_in[c], w_out[o], w_out[n]  # (B, D), (B, D), (B, K, D)
    positive = torch.sigmoid((v * u).sum(-1))  # (B,)
    negative = torch.sigmoid(torch.bmm(un, v.unsqueeze(-1)).squeeze(-1))  # (B, K)
    g_pos, g_neg = positive - 1, negative  # d loss / d score
    grad_v = g_pos.unsqueeze(-1) * u + (g_neg.unsqueeze(-1) * un).sum(1)  # (B, D)
    w_in.index_add_(0, c, grad_v, alpha=-lr)
    w_out.index_add_(0, o, g_pos.unsqueeze(-1) * v, alpha=-lr)
    w_out.index_add_(0, n.flatten(), (g_neg.unsqueeze(-1) * v.unsqueeze(1)).flatten(0, 1), alpha=-lr)
    eps = 1e-7
    return float(-(positive + eps).log().mean() - (1 - negative + eps).log().sum(-1).mean())


def write_text(path: Path, words: list[str], vectors: torch.Tensor) -> None:
    """word2vec's text format: `COUNT DIM`, then one `word v1 .. vD` line per word."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors.numpy()):
            out.write(word + " " + " ".join(f"{x:.5f}" for x in row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the reference datasets' folder")
    parser.add_argument("--out", type=Path, required=True, help="the vectors file to write (text format)")
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--subsample", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.025)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sentences = list(corpus(args.data))
    words, counts, ids, sentence_of = encode(sentences, args.min_count)
    print(f"corpus: {len(sentences):,} sentences, {len(ids):,} tokens, {len(words):,} words "
          f"(min count {args.min_count})", flush=True)
    write_text(args.out, words, train(ids, sentence_of, counts, args))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
