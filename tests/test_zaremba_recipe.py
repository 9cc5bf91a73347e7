"""Zaremba et al. 2014's PTB recipe (configs/experiment/ptb_zaremba_small.yaml): the epoch_decay
schedule, task.init_range, and the claim that lr 20 / clip 0.25 on rnnzoo's per-token mean loss
is the paper's lr 1 / clip 5 on its cost summed over the time steps."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnzoo.api import RunConfig, build, plain, train
from rnnzoo.tasks.generation import stream_windows
from rnnzoo.training.config import TrainerConfig
from rnnzoo.training.optim import build_scheduler

from .conftest import compose_config
from .test_generation import text_file, tiny  # noqa: F401  (text_file is a fixture)


def test_epoch_decay_halves_after_each_epoch_past_the_fourth():
    """Epochs 1-4 at lr 1, then 0.5 ** (e - 4): the lr of each of Zaremba's 13 epochs."""
    config = TrainerConfig(optimizer="sgd", lr=1.0, schedule="epoch_decay", decay_after_epochs=4, gamma=0.5)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=config.lr)
    scheduler = build_scheduler(optimizer, config)
    lrs = []
    for _ in range(13):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()  # the trainer's call at the end of an epoch
    assert lrs == pytest.approx([1, 1, 1, 1] + [0.5 ** k for k in range(1, 10)])


def test_the_trainer_steps_epoch_decay_at_epoch_ends_only(tmp_path, text_file, monkeypatch):  # noqa: F811
    """Every update of an epoch uses that epoch's lr: the schedule moves at epoch ends, not per step."""
    seen: list[float] = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    overrides = tiny(text_file, "trainer.max_steps=null", "trainer.max_epochs=4", "trainer.eval_every=100000",
                     "trainer.optimizer=sgd", "trainer.momentum=0", "trainer.lr=0.8", "trainer.schedule=epoch_decay",
                     "trainer.decay_after_epochs=2", "trainer.gamma=0.5", "task.sample_tokens=0")
    train(compose_config(overrides), tmp_path)
    task, _, _ = build(plain(compose_config(overrides)))
    per_epoch = math.ceil((task._streams("train", 4).shape[1] - 1) / 8)  # windows of bptt 8 in 4 streams
    assert seen == pytest.approx([0.8] * 2 * per_epoch + [0.4] * per_epoch + [0.2] * per_epoch)


def test_init_range_fills_every_parameter_uniformly(text_file):  # noqa: F811
    """Embedding, LSTM weights and biases (forget bias 1 replaced), output layer: all in [-a, a]."""
    torch.manual_seed(0)
    _, network, _ = build(plain(compose_config(tiny(text_file, "model.num_layers=2", "task.init_range=0.1"))))
    for name, parameter in network.named_parameters():
        values = parameter.detach().abs()
        assert float(values.max()) <= 0.1, name
        assert float(values.max()) > 0.05, name  # filled, not zeros or a narrower init
    torch.manual_seed(0)
    _, default, _ = build(plain(compose_config(tiny(text_file))))
    assert float(default.embed[0].weight.detach().abs().max()) > 1  # without the option: the layers' own inits


def zaremba_cost(task, network, batch) -> torch.Tensor:
    """The paper's cost: cross-entropy summed over the time steps, averaged over the batch."""
    logits, _ = network(batch.inputs, None, None)  # (B, T, V)
    total = nn.functional.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="sum")
    return total / batch.targets.shape[0]


def sgd_step(network, loss: torch.Tensor, lr: float, clip: float) -> None:
    """One update as the trainer makes it: global-norm clip, then plain SGD."""
    network.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(list(network.parameters()), clip)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter -= lr * parameter.grad


@pytest.mark.parametrize("paper_clip", [5.0, 0.05])  # 5: not reached by this tiny net; 0.05: clipping
def test_lr_20_clip_quarter_on_the_mean_loss_is_the_papers_update(text_file, paper_clip):  # noqa: F811
    T = 8
    torch.manual_seed(0)
    task, network, _ = build(plain(compose_config(tiny(text_file, "task.init_range=0.1"))))
    twin = build(plain(compose_config(tiny(text_file, "task.init_range=0.1"))))[1]
    twin.load_state_dict(network.state_dict())
    batch = next(stream_windows(task._streams("train", 4), T))  # (4, 8) inputs
    sgd_step(network, zaremba_cost(task, network, batch), lr=1.0, clip=paper_clip)
    sgd_step(twin, task.step(twin, batch).loss, lr=1.0 * T, clip=paper_clip / T)
    for (name, a), b in zip(network.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_the_experiment_config_composes_to_the_papers_recipe():
    run = RunConfig.of(plain(compose_config(["experiment=ptb_zaremba_small"])))
    t = run.trainer
    assert (run.model.hidden_size, run.model.num_layers, run.model.dropout) == (200, 2, 0.0)
    assert (run.task.batch_size, run.task.bptt, run.task.init_range, run.task.tie_embeddings) == (20, 20, 0.1, False)
    assert (t.optimizer, t.momentum, t.schedule, t.decay_after_epochs, t.gamma, t.max_epochs) == \
        ("sgd", 0.0, "epoch_decay", 4, 0.5, 13)
    bptt = run.task.bptt  # the paper's lr 1 and clip 5, on a cost 20x ours
    assert (t.lr / bptt, t.grad_clip * bptt) == pytest.approx((1.0, 5.0))
