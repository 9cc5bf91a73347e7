"""Jordan's network: its defaults must learn (a small adding problem that they solve in about 5 s,
test MSE 0.001 after 500 steps, against 0.23 for the former defaults), and its fast path
(`impl="auto"`, `JordanLoop`: BPTT written out) must compute what the equations do
(`impl="reference"`, autograd through `Jordan.cell_step`), values and gradients.

The former defaults (f = g = tanh, μ = 0.5, 64 outputs) stayed at the 1/6 baseline here: their
outputs saturate and the loop gain W^yh W^hs blows up under Adam (docs/results_jordan.md).
"""

from __future__ import annotations

import copy

import pytest
import torch

from rnnzoo.api import create_model
from rnnzoo.models.jordan import JordanConfig, JordanLoop
from rnnzoo.nn.inside import recording
from rnnzoo.tasks.adding import AddingConfig, AddingTask

FORMER_DEFAULTS = {"nonlinearity": "tanh", "output_nonlinearity": "tanh", "state_decay": 0.5, "output_size": 64,
                   "loop_scale": 1.0, "hidden_size": 128}


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


def test_defaults_are_the_measured_ones():
    """docs/results_jordan.md measured these; changing one means measuring again."""
    config = JordanConfig()
    assert (config.nonlinearity, config.output_nonlinearity, config.state_decay) == ("relu", "identity", 1.0)
    assert (config.hidden_size, config.output_size, config.loop_scale, config.impl) == (256, 64, 0.4, "auto")


def auto_and_reference(**options):
    auto = create_model("jordan", input_size=5, hidden_size=12, output_size=6, **options)
    reference = copy.deepcopy(auto)
    reference.impl = "reference"
    return auto, reference


def run(model, x, s0):
    """Outputs, final state, and every parameter's and s(0)'s gradient of a loss on both."""
    s0 = s0.clone().requires_grad_()
    y, state = model(x, state=s0)
    ((y * torch.linspace(-1, 1, y.shape[-1])).square().sum() + (state * 0.3).sum()).backward()
    return [y, state, s0.grad] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("options", [
    {},  # the defaults: relu, identity, μ = 1
    {"nonlinearity": "tanh", "output_nonlinearity": "tanh", "state_decay": 0.3},
    {"output_nonlinearity": "sigmoid", "state_decay": 0.0},
    {"num_layers": 2, "bidirectional": True, "state_decay": 0.7},
    {"loop_scale": 1.0},
])
def test_fast_path_equals_the_equations(options):
    torch.manual_seed(0)
    auto, reference = auto_and_reference(**options)
    x = torch.randn(3, 9, 5)
    s0 = torch.randn(auto.num_layers * auto.num_directions, 3, 6)
    for fast, slow in zip(run(auto, x, s0), run(reference, x, s0)):
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("f, g", [("relu", "identity"), ("tanh", "sigmoid")])
def test_hand_written_bptt_is_the_gradient(f, g):
    """JordanLoop's backward against finite differences, in double precision."""
    torch.manual_seed(0)
    B, T, H, Y = 2, 4, 3, 2
    inputs = [torch.randn(B, T, H, dtype=torch.double), torch.randn(B, Y, dtype=torch.double),
              0.5 * torch.randn(H, Y, dtype=torch.double), 0.5 * torch.randn(Y, H, dtype=torch.double),
              torch.randn(Y, dtype=torch.double)]
    inputs = [t.requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(lambda *t: JordanLoop.apply(*t, 0.8, f, g)[:2], inputs)


def test_loop_scale_only_changes_what_is_stored():
    """W^hs = α V^hs and W^yh = α V^yh: the same network as α = 1 holding the products."""
    torch.manual_seed(0)
    scaled = create_model("jordan", input_size=5, hidden_size=12, output_size=6, loop_scale=0.25)
    plain = create_model("jordan", input_size=5, hidden_size=12, output_size=6, loop_scale=1.0)
    with torch.no_grad():
        for name, p in plain.named_parameters():
            factor = 0.25 if name.startswith(("weight_hs", "weight_yh")) else 1.0
            p.copy_(factor * getattr(scaled, name))
    x = torch.randn(2, 7, 5)
    torch.testing.assert_close(scaled(x)[0], plain(x)[0])
    bound = 1 / 12 ** 0.5  # U(-1/√H, 1/√H) for W, so V = W / α reaches 1/(α√H)
    assert scaled.weight_hs_l0.abs().max() > bound and (0.25 * scaled.weight_hs_l0).abs().max() <= bound


def test_padded_batches_take_the_equations():
    torch.manual_seed(0)
    auto, reference = auto_and_reference()
    x, lengths = torch.randn(2, 6, 5), torch.tensor([6, 3])
    (y_auto, s_auto), (y_ref, s_ref) = auto(x, lengths), reference(x, lengths)
    torch.testing.assert_close(y_auto, y_ref)
    torch.testing.assert_close(s_auto, s_ref)
    assert y_auto[1, 3:].abs().max() == 0


@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_records_hidden_and_fed_back_state(impl):
    torch.manual_seed(0)
    model = create_model("jordan", input_size=5, hidden_size=12, output_size=6, state_decay=0.5, impl=impl)
    x, s0 = torch.randn(2, 4, 5), torch.randn(1, 2, 6)
    with recording() as inside:
        y, _ = model(x, state=s0)
    h, s = inside["jordan.hidden"], inside["jordan.state"]
    assert h.shape == (2, 4, 12) and s.shape == (2, 4, 6)
    torch.testing.assert_close(s[:, 0], s0[0])  # s(0): what the first step reads
    torch.testing.assert_close(s[:, 1:], 0.5 * s[:, :-1] + y[:, :-1].detach())  # s(t) = μ s(t-1) + y(t-1)
    _, _, _, w_yh, c = (w.detach() for w in model.layer_weights(0, 0))
    torch.testing.assert_close(h @ w_yh.T + c, y.detach(), atol=1e-5, rtol=1e-5)  # y(t) = W^yh h(t) + c
