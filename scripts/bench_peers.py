"""rnnzoo's training step beside the peers users would otherwise pick, in one run, same machine.

* nanoGPT (karpathy/nanoGPT, `model.py`) at its README's CPU configuration: 4 layers, 4 heads,
  128 wide, context 64, batch 12, no dropout, no biases, AdamW (lr 1e-3, betas 0.9/0.99, weight
  decay 0.1 on matrices), clip 1.0 -- beside rnnzoo's `experiment=tinyshakespeare_transformer`.
* pytorch/examples `word_language_model` (`model.py`) at its defaults: 2-layer LSTM, 200 wide,
  embeddings 200, dropout 0.2, batch 20, bptt 35, plain SGD lr 20, clip 0.25, hidden state
  carried between batches -- beside rnnzoo's LSTM language model at the same sizes and settings
  (`task=generation task.level=word`), both on PTB's vocabulary.

The peers' code is never copied here: give the path of a checkout of each (`--nanogpt DIR`,
`--word-lm DIR`, the folder holding its model.py); a peer without a path is skipped. rnnzoo's
side is its real per-batch training code (`Trainer._train_batch`: task.step, statistics, state
carrying, clipping with the norm logged, schedule). The two sides alternate batch by batch on
the same batches and the median over rounds is reported: ratio = rnnzoo tokens/s / peer
tokens/s (target >= 1.0).

    python scripts/bench_peers.py --nanogpt ~/src/nanoGPT --word-lm ~/src/examples/word_language_model
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
from itertools import islice
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from rnnzoo.api import build, plain
from rnnzoo.config import compose_train
from rnnzoo.timing import interleaved_rates
from rnnzoo.training.logger import RunLogger
from rnnzoo.training.trainer import Trainer


def peer_module(folder: Path, name: str) -> ModuleType:
    """The peer's model.py, imported from the user's checkout."""
    path = folder / "model.py"
    if not path.is_file():
        sys.exit(f"error: {path} not found: give the folder holding the peer's model.py")
    spec = importlib.util.spec_from_file_location(f"peer_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class NanoGPTStep:
    """nanoGPT's train.py inner step: forward with targets, backward, clip, AdamW, zero grads."""

    def __init__(self, folder: Path, vocab: int) -> None:
        model = peer_module(folder, "nanogpt")
        config = model.GPTConfig(block_size=64, vocab_size=vocab, n_layer=4, n_head=4, n_embd=128,
                                 dropout=0.0, bias=False)
        self.network = model.GPT(config)
        self.optimizer = self.network.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")

    def train_batch(self, batch) -> None:
        _, loss = self.network(batch.inputs.contiguous(), batch.targets.contiguous())
        loss.backward()
        nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


class WordLMStep:
    """word_language_model's main.py `train()` step: repackage the hidden state, forward,
    NLL, backward, clip 0.25, p -= lr * grad (time-major batches, as it uses them)."""

    def __init__(self, folder: Path, vocab: int, batch_size: int) -> None:
        model = peer_module(folder, "word_lm")
        self.network = model.RNNModel("LSTM", vocab, 200, 200, 2, 0.2, False)
        self.hidden = self.network.init_hidden(batch_size)
        self.criterion = nn.NLLLoss()
        self.vocab = vocab

    def train_batch(self, batch) -> None:
        data, targets = batch.inputs.t().contiguous(), batch.targets.t().reshape(-1)  # (T, B), (T*B,)
        self.hidden = tuple(h.detach() for h in self.hidden)
        self.network.zero_grad()
        output, self.hidden = self.network(data, self.hidden)
        loss = self.criterion(output.view(-1, self.vocab), targets)
        loss.backward()
        nn.utils.clip_grad_norm_(self.network.parameters(), 0.25)
        for p in self.network.parameters():
            p.data.add_(p.grad, alpha=-20.0)


def ours(overrides: list[str], steps: int):
    """(rnnzoo's per-batch training function, its batches, vocabulary size)."""
    config = plain(compose_train(["trainer.progress=false", *overrides]))
    torch.manual_seed(0)
    task, network, trainer_config = build(config)
    batches = list(islice(task.train_batches(0), steps))
    run_dir = Path(tempfile.mkdtemp())
    trainer = Trainer(task, network, trainer_config, run_dir, config)
    trainer.logger = RunLogger(run_dir, config)
    return trainer._train_batch, batches, task.vocab_size


def compare(name: str, ours_step, peer_step, batches, rounds: int) -> float:
    interleaved_rates(ours_step, peer_step, batches[:5])  # warm-up
    results = [interleaved_rates(ours_step, peer_step, batches) for _ in range(rounds)]
    ratio = statistics.median(o / p for o, p in results)
    print(f"| {name} | {statistics.median(o for o, _ in results):,.0f} | "
          f"{statistics.median(p for _, p in results):,.0f} | {ratio:.3f} |")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path, help="folder of a nanoGPT checkout (its model.py)")
    parser.add_argument("--word-lm", type=Path, help="folder of pytorch/examples/word_language_model")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads} steps={args.steps} rounds={args.rounds}\n")
    print("| comparison | rnnzoo tokens/s | peer tokens/s | ratio (target >= 1.0) |\n|---|---|---|---|")
    if args.nanogpt:
        step, batches, vocab = ours(["experiment=tinyshakespeare_transformer"], args.steps)
        compare("decoder Transformer vs nanoGPT (4x128, ctx 64, batch 12)", step,
                NanoGPTStep(args.nanogpt, vocab).train_batch, batches, args.rounds)
    else:
        print("| nanoGPT | skipped: no --nanogpt | | |")
    if args.word_lm:
        step, batches, vocab = ours(["task=generation", "dataset=ptb", "task.level=word", "model=lstm",
                                     "model.hidden_size=200", "model.num_layers=2", "model.dropout=0.2",
                                     "task.embedding_dim=200", "task.dropout=0.2", "task.batch_size=20",
                                     "task.bptt=35", "task.sampling=streams", "trainer.optimizer=sgd",
                                     "trainer.momentum=0", "trainer.lr=20", "trainer.grad_clip=0.25"], args.steps)
        compare("LSTM LM vs word_language_model (2x200, batch 20, bptt 35)", step,
                WordLMStep(args.word_lm, vocab, 20).train_batch, batches, args.rounds)
    else:
        print("| word_language_model | skipped: no --word-lm | | |")


if __name__ == "__main__":
    main()
