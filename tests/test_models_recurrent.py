"""Recurrent sequence models: the contract every "sequence" model keeps, and each family's equations.

The contract tests are parametrized over the registry itself (every model whose default
traits include "sequence"), so a new family is tested for forward, backward, state passing,
causality and padding without new test code. The equation tests write each paper's formula
out again here, independently of the model code, on tiny sizes.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import rnnzoo.models  # noqa: F401  (registers the models)
from rnnzoo.errors import RnnzooError
from rnnzoo.models.traits import model_traits
from rnnzoo.nn.recurrent import RecurrentConfig
from rnnzoo.registry import MODELS

from .conftest import assert_ignores_the_future

INPUT = 5
SMALL = dict(input_size=INPUT, hidden_size=6, output_size=4, num_layers=2)
SEQUENCE_MODELS = [name for name in MODELS.names()  # token-input models (bert) read ids, not features
                   if "sequence" in model_traits(name) and "token_input" not in model_traits(name)]


def config_fields(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(MODELS.entry(name).config)}


def build(name: str, seed: int = 0, **options):
    """Model `name` at tiny sizes; SMALL fills only the options its config has."""
    entry = MODELS.entry(name)
    fields = config_fields(name)
    values = {k: v for k, v in SMALL.items() if k in fields} | options
    torch.manual_seed(seed)
    return entry.target(entry.make_config(values))


def accepts(name: str, **options) -> bool:
    try:
        build(name, **options)
    except (RnnzooError, ValueError):
        return False
    return True


def variants(need: str | None = None) -> list:
    """(name, options) for every sequence model x impl it accepts x direction it offers."""
    found = []
    for name in SEQUENCE_MODELS:
        fields = config_fields(name)
        impls = [i for i in ("torch", "reference") if accepts(name, impl=i)] if "impl" in fields else [None]
        for impl in impls:
            for bidirectional in ([False, True] if "bidirectional" in fields else [False]):
                options = {"impl": impl} if impl else {}
                if bidirectional:
                    options["bidirectional"] = True
                traits = model_traits(name, MODELS.entry(name).make_config(options))
                if need is None or need in traits:
                    label = f"{name}-{impl or 'default'}-{'bi' if bidirectional else 'uni'}"
                    found.append(pytest.param(name, options, id=label))
    return found


def parts(state) -> tuple[torch.Tensor, ...]:
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


# --- the contract, over the registry ---------------------------------------------------

@pytest.mark.parametrize("name, options", variants())
def test_forward_backward_every_parameter_gets_a_gradient(name, options):
    model = build(name, dropout=0.1, **options) if "dropout" in config_fields(name) else build(name, **options)
    model.train()
    x = torch.randn(3, 7, INPUT)
    out, state = model(x)
    assert out.shape[:2] == (3, 7)
    if hasattr(model, "output_size"):
        assert out.shape[2] == model.output_size
    loss = out.pow(2).mean() + sum(p.pow(2).mean() for p in parts(state) if p is not None)
    loss.backward()
    assert torch.isfinite(out).all()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname}: non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname}: gradient is all zero"


@pytest.mark.parametrize("name, options", variants(need="stateful"))
def test_two_chunks_with_state_carried_equal_one_run(name, options):
    model = build(name, **options).eval()
    x = torch.randn(2, 10, INPUT)
    whole, whole_state = model(x)
    first, state = model(x[:, :4])
    second, final = model(x[:, 4:], state=state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5, rtol=0)
    for a, b in zip(parts(final), parts(whole_state)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name, options", variants(need="causal"))
def test_causal_output_ignores_the_future(name, options):
    assert_ignores_the_future(build(name, **options).eval(), INPUT)


@pytest.mark.parametrize("name, options", variants())
def test_padded_batch_equals_each_sequence_alone(name, options):
    model = build(name, **options).eval()
    lengths = torch.tensor([7, 4, 1, 6])
    x = torch.randn(4, 7, INPUT)  # the pads hold noise, which must not leak in
    out, state = model(x, lengths=lengths)
    for b, length in enumerate(lengths.tolist()):
        alone, alone_state = model(x[b:b + 1, :length])
        torch.testing.assert_close(out[b, :length], alone[0], atol=1e-5, rtol=0)
        assert (out[b, length:] == 0).all(), "outputs at pads must be 0"
        if "stateful" in model_traits(name) or state is not None:
            for padded, single in zip(parts(state), parts(alone_state)):
                torch.testing.assert_close(padded[:, b], single[:, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", [n for n in SEQUENCE_MODELS if "bidirectional" in config_fields(n)])
def test_traits_follow_direction(name):
    entry = MODELS.entry(name)
    assert "causal" not in model_traits(name, entry.make_config({"bidirectional": True}))
    assert "stateful" not in model_traits(name, entry.make_config({"bidirectional": True}))


# --- the recurrent families ------------------------------------------------------------

RECURRENT = [n for n in SEQUENCE_MODELS if issubclass(MODELS.entry(n).config, RecurrentConfig)]  # the shared options


@pytest.mark.parametrize("name", RECURRENT)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_traits_and_state_layout(name, bidirectional):
    model = build(name, bidirectional=bidirectional, num_layers=3)
    expected = {"sequence", "bidirectional"} if bidirectional else {"sequence", "causal", "stateful"}
    assert model_traits(name, model.config) == expected
    D = 2 if bidirectional else 1
    width = model.output_size // D  # hidden_size; a Jordan net's output_size
    assert width in (SMALL["output_size"], SMALL["hidden_size"]) and model.output_size == D * width
    out, state = model(torch.randn(2, 3, INPUT))
    assert out.shape == (2, 3, D * width)
    assert parts(state) and all(p.shape == (3 * D, 2, width) for p in parts(state))


TWINS = {  # name, options -> the PyTorch module computing the same network
    "elman-tanh": ("elman", {"nonlinearity": "tanh"}, lambda **kw: nn.RNN(nonlinearity="tanh", **kw)),
    "elman-relu": ("elman", {"nonlinearity": "relu"}, lambda **kw: nn.RNN(nonlinearity="relu", **kw)),
    "gru": ("gru", {}, nn.GRU),
    "lstm": ("lstm", {}, nn.LSTM),
}


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_reference_equals_pytorch_twin(twin, bidirectional):
    name, options, make_twin = TWINS[twin]
    config = dict(options, num_layers=2, bidirectional=bidirectional, dropout=0.3)
    model = build(name, impl="reference", **config).eval()
    torch.manual_seed(1)  # a different draw: the copy below must carry every weight
    module = make_twin(input_size=INPUT, hidden_size=6, num_layers=2, batch_first=True,
                       dropout=0.3, bidirectional=bidirectional).eval()
    module.load_state_dict(model.rnn.state_dict())
    x = torch.randn(3, 8, INPUT)
    cells = 2 * (2 if bidirectional else 1)
    state = torch.randn(cells, 3, 6)
    state = (state, torch.randn(cells, 3, 6)) if name == "lstm" else state
    expected, expected_state = module(x, state)
    out, out_state = model(x, state=state)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(parts(out_state), parts(expected_state)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

    # the same parameters behind impl="torch" (packed sequences) agree on a padded batch too
    fast = build(name, impl="torch", **config).eval()
    fast.load_state_dict(model.state_dict())
    lengths = torch.tensor([8, 3, 5])
    out, out_state = model(x, lengths=lengths, state=state)
    fast_out, fast_state = fast(x, lengths=lengths, state=state)
    torch.testing.assert_close(out, fast_out, atol=1e-5, rtol=1e-5)
    for a, b in zip(parts(out_state), parts(fast_state)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# --- each family's equations, written out again ------------------------------------------

def one_step(name: str, x: torch.Tensor, state, **options):
    """Both impls of a one-layer model on a single step; asserts they agree, returns (h, state)."""
    results = []
    for impl in ("torch", "reference"):
        model = build(name, num_layers=1, impl=impl, **options).eval()
        with torch.no_grad():
            results.append((model, *model(x.unsqueeze(1), state=state)))
    (model, out, new_state), (_, ref_out, ref_state) = results
    torch.testing.assert_close(ref_out, out, atol=1e-6, rtol=1e-6)
    return model.rnn, out[:, 0], new_state


def test_lstm_one_step_is_the_lecture_formula():
    x, h, s = torch.randn(2, INPUT), torch.randn(1, 2, 6), torch.randn(1, 2, 6)
    rnn, out, (h_new, s_new) = one_step("lstm", x, (h, s))
    # The lecture's row-vector form: x_t · U^g with U^g (input, H) = W_ig^T; b^g = b_ig + b_hg.
    U = dict(zip("ifgo", rnn.weight_ih_l0.detach().t().chunk(4, dim=1)))
    V = dict(zip("ifgo", rnn.weight_hh_l0.detach().t().chunk(4, dim=1)))
    b = dict(zip("ifgo", (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().chunk(4)))
    h_prev, s_prev = h[0], s[0]
    g = torch.tanh(b["g"] + x @ U["g"] + h_prev @ V["g"])
    i = torch.sigmoid(b["i"] + x @ U["i"] + h_prev @ V["i"])
    f = torch.sigmoid(b["f"] + x @ U["f"] + h_prev @ V["f"])
    s_t = s_prev * f + g * i
    o = torch.sigmoid(b["o"] + x @ U["o"] + h_prev @ V["o"])
    h_t = torch.tanh(s_t) * o
    torch.testing.assert_close(out, h_t, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(h_new[0], h_t, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(s_new[0], s_t, atol=1e-6, rtol=1e-6)


def test_gru_one_step_is_cho_in_pytorch_form():
    x, h = torch.randn(2, INPUT), torch.randn(1, 2, 6)
    rnn, out, h_new = one_step("gru", x, h)
    W_i = dict(zip("rzn", rnn.weight_ih_l0.detach().chunk(3)))
    W_h = dict(zip("rzn", rnn.weight_hh_l0.detach().chunk(3)))
    b_i = dict(zip("rzn", rnn.bias_ih_l0.detach().chunk(3)))
    b_h = dict(zip("rzn", rnn.bias_hh_l0.detach().chunk(3)))
    h_prev = h[0]
    r = torch.sigmoid(W_i["r"] @ x.T + b_i["r"][:, None] + W_h["r"] @ h_prev.T + b_h["r"][:, None]).T
    z = torch.sigmoid(W_i["z"] @ x.T + b_i["z"][:, None] + W_h["z"] @ h_prev.T + b_h["z"][:, None]).T
    n = torch.tanh((W_i["n"] @ x.T + b_i["n"][:, None]).T + r * (W_h["n"] @ h_prev.T + b_h["n"][:, None]).T)
    h_t = (1 - z) * n + z * h_prev
    torch.testing.assert_close(out, h_t, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(h_new[0], h_t, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("nonlinearity, f", [("tanh", torch.tanh), ("relu", torch.relu)])
def test_elman_one_step_is_the_lecture_formula(nonlinearity, f):
    x, h = torch.randn(2, INPUT), torch.randn(1, 2, 6)
    rnn, out, h_new = one_step("elman", x, h, nonlinearity=nonlinearity)
    W_hx, W_hh = rnn.weight_ih_l0.detach(), rnn.weight_hh_l0.detach()
    b = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach()
    h_t = torch.stack([f(W_hx @ x[k] + W_hh @ h[0, k] + b) for k in range(2)])  # h(t) = f(W^hx x + W^hh h + b)
    torch.testing.assert_close(out, h_t, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(h_new[0], h_t, atol=1e-6, rtol=1e-6)


def jordan_by_hand():
    """A one-unit-in, two-hidden, one-out Jordan net whose three steps are worked out below."""
    model = build("jordan", input_size=1, hidden_size=2, output_size=1, num_layers=1,
                  nonlinearity="relu", output_nonlinearity="identity", state_decay=0.5, loop_scale=1.0)
    with torch.no_grad():
        model.weight_hx_l0.copy_(torch.tensor([[1.0], [2.0]]))   # W^hx
        model.bias_h_l0.copy_(torch.tensor([0.0, -1.0]))         # b
        model.weight_hs_l0.copy_(torch.tensor([[1.0], [-1.0]]))  # W^hs
        model.weight_yh_l0.copy_(torch.tensor([[1.0, 0.5]]))     # W^yh
        model.bias_y_l0.copy_(torch.tensor([0.25]))              # c
    return model


def test_jordan_three_steps_by_hand():
    # x = 1, 0, 2; s(0) = 0; μ = 0.5; f = relu; g = identity.
    # t=0: h = relu([1, 2-1] + [1, -1]*0)        = [1, 1]       y = 1 + 0.5 + 0.25   = 1.75
    #      s(1) = 0.5*0 + 1.75                                  = 1.75
    # t=1: h = relu([0, -1] + [1.75, -1.75])     = [1.75, 0]    y = 1.75 + 0 + 0.25  = 2.0
    #      s(2) = 0.5*1.75 + 2.0                                = 2.875
    # t=2: h = relu([2, 3] + [2.875, -2.875])    = [4.875, .125] y = 4.875 + .0625 + .25 = 5.1875
    #      s(3) = 0.5*2.875 + 5.1875                            = 6.625
    model = jordan_by_hand()
    x = torch.tensor([[[1.0], [0.0], [2.0]]])  # (B=1, T=3, 1)
    out, state = model(x)
    torch.testing.assert_close(out, torch.tensor([[[1.75], [2.0], [5.1875]]]), atol=0, rtol=0)
    torch.testing.assert_close(state, torch.tensor([[[6.625]]]), atol=0, rtol=0)
    _, state_after_two = model(x[:, :2])
    torch.testing.assert_close(state_after_two, torch.tensor([[[2.875]]]), atol=0, rtol=0)
    out_right_left, _ = build("jordan", input_size=1, hidden_size=2, output_size=1,
                              num_layers=1, bidirectional=True).eval()(x)
    assert out_right_left.shape == (1, 3, 2)


def test_jordan_equations_with_tanh_units():
    model = build("jordan", num_layers=1, state_decay=0.3, nonlinearity="tanh",
                  output_nonlinearity="tanh", loop_scale=1.0).eval()  # f = g = tanh; weights stored as W
    p = {n: t.detach() for n, t in model.named_parameters()}
    x = torch.randn(2, 3, INPUT)
    s0 = torch.randn(1, 2, SMALL["output_size"])
    s, ys = s0[0], []
    for t in range(3):
        h = torch.tanh(x[:, t] @ p["weight_hx_l0"].T + s @ p["weight_hs_l0"].T + p["bias_h_l0"])
        y = torch.tanh(h @ p["weight_yh_l0"].T + p["bias_y_l0"])
        s = 0.3 * s + y
        ys.append(y)
    out, state = model(x, state=s0)
    torch.testing.assert_close(out, torch.stack(ys, dim=1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(state[0], s, atol=1e-6, rtol=1e-6)


def test_jordan_options_are_checked():
    for bad in ({"impl": "torch"}, {"output_nonlinearity": "softmax"}, {"nonlinearity": "gelu"},
                {"state_decay": 1.5}):
        with pytest.raises(RnnzooError):
            build("jordan", **bad)


# --- initialisations --------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_irnn_init_is_identity(scale):
    model = build("elman", init="identity", nonlinearity="relu", identity_scale=scale,
                  bidirectional=True)
    for name, p in model.rnn.named_parameters():
        if name.startswith("weight_hh"):
            torch.testing.assert_close(p.detach(), scale * torch.eye(6), atol=0, rtol=0)
        elif name.startswith("bias"):
            assert (p == 0).all(), name
        else:
            assert p.abs().max() < 0.01, name  # N(0, 0.001²)
    with pytest.raises(RnnzooError):
        build("elman", init="orthogonal")


@pytest.mark.parametrize("forget_bias", [1.0, 2.5])
def test_lstm_forget_bias(forget_bias):
    model = build("lstm", forget_bias=forget_bias, bidirectional=True)
    H = SMALL["hidden_size"]
    for suffix in ("l0", "l1", "l0_reverse", "l1_reverse"):
        bias = getattr(model.rnn, f"bias_ih_{suffix}") + getattr(model.rnn, f"bias_hh_{suffix}")
        torch.testing.assert_close(bias[H:2 * H].detach(), torch.full((H,), forget_bias))


def test_lstm_chrono_init():
    T_max = 50
    model = build("lstm", init="chrono", chrono_max_lag=T_max, hidden_size=64)
    H = 64
    for suffix in ("l0", "l1"):
        bias = (getattr(model.rnn, f"bias_ih_{suffix}") + getattr(model.rnn, f"bias_hh_{suffix}")).detach()
        input_gate, forget_gate = bias[0:H], bias[H:2 * H]
        assert (forget_gate >= 0).all() and (forget_gate <= math.log(T_max - 1) + 1e-6).all()
        assert forget_gate.std() > 0.3  # spread over the range, not one value
        torch.testing.assert_close(input_gate, -forget_gate, atol=0, rtol=0)
