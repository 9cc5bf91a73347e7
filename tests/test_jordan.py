"""Jordan's network must learn: a small adding problem that its defaults solve in about 5 s
(test MSE 0.001 after 500 steps, against 0.23 for the former defaults).

The former defaults (f = g = tanh, μ = 0.5, 64 outputs) stayed at the 1/6 baseline here: their
outputs saturate and the loop gain W^yh W^hs blows up under Adam (docs/results_jordan.md).
"""

from __future__ import annotations

import torch

from rnnzoo.api import create_model
from rnnzoo.tasks.adding import AddingConfig, AddingTask

FORMER_DEFAULTS = {"nonlinearity": "tanh", "output_nonlinearity": "tanh", "state_decay": 0.5, "output_size": 64}


def adding_mse(options: dict, steps: int = 500, length: int = 20, seed: int = 0) -> float:
    """Test MSE after `steps` Adam steps (lr 5e-3, clip 1: the trainer's defaults) on the adding problem."""
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = AddingTask(AddingConfig(length=length, batch_size=64, eval_examples=256), seed, {})
        network = task.build_network(create_model("jordan", input_size=task.input_size, **options))
        optimizer = torch.optim.Adam(network.parameters(), lr=5e-3)
        step = epoch = 0
        while step < steps:
            for batch in task.train_batches(epoch):
                loss = task.step(network, batch, None).loss
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                optimizer.step()
                step += 1
                if step == steps:
                    break
            epoch += 1
        network.eval()
        with torch.no_grad():
            errors = [task.step(network, b, None) for b in task.eval_batches("test")]
        return float(sum(e.loss * e.count for e in errors) / sum(e.count for e in errors))
    finally:
        torch.set_num_threads(threads)


def test_jordan_defaults_learn_the_adding_problem():
    assert adding_mse({}) < 0.1 * (1 / 6)  # ten times below the baseline of a model that ignores its input


def test_former_jordan_defaults_do_not():
    assert adding_mse(FORMER_DEFAULTS) > 0.5 * (1 / 6)
