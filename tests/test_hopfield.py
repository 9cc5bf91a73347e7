"""Hopfield networks: the classic one (Hopfield 1982; Storkey 1997), the modern one (Ramsauer et
al. 2020) as a memory and as a sequence layer, and the associative task through `rnnzoo.api`.

The equations are written out again here, by hand or with loops, independently of the model code.
"""

from __future__ import annotations

import json

import pytest
import torch

from rnnzoo import create_model
from rnnzoo.api import evaluate, train
from rnnzoo.errors import IncompatibleError, RnnzooError
from rnnzoo.models.modern_hopfield import HopfieldPooling, association, hopfield_energy
from rnnzoo.training.checkpoint import load_checkpoint_file

from .conftest import TINY_COPY, compose_config


def random_patterns(P: int, N: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (P, N), generator=generator).float() * 2 - 1  # (P, N) of ±1


def flip(patterns: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Each row with round(fraction * N) of its units flipped."""
    generator = torch.Generator().manual_seed(seed)
    N = patterns.shape[1]
    chosen = torch.rand(patterns.shape, generator=generator).argsort(1)[:, :round(fraction * N)]
    return patterns * torch.ones_like(patterns).scatter_(1, chosen, -1.0)


def classic(patterns: torch.Tensor | None = None, **options):
    net = create_model("hopfield", **options)
    if patterns is not None:
        net.store(patterns)
    return net


# --- the classic network: storage rules ----------------------------------------------------

def test_hebbian_weights_by_hand():
    xi = torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])  # P = 2, N = 3
    # W_ij = (1/3) Σ_μ ξ_i ξ_j for i ≠ j:  W_01 = (-1 + 1)/3 = 0,  W_02 = (1 - 1)/3 = 0,  W_12 = (-1 - 1)/3
    expected = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -2 / 3], [0.0, -2 / 3, 0.0]])
    torch.testing.assert_close(classic(xi).weight, expected)


def test_hebbian_weights_are_symmetric_zero_diagonal_and_additive():
    patterns = random_patterns(7, 20, seed=0)
    W = classic(patterns).weight
    by_loops = sum(torch.outer(xi, xi) for xi in patterns) / 20
    by_loops.fill_diagonal_(0)
    torch.testing.assert_close(W, by_loops)
    assert torch.equal(W, W.T) and (W.diagonal() == 0).all()
    in_two = classic(patterns[:3])
    in_two.store(patterns[3:])  # storing adds to the memory
    torch.testing.assert_close(in_two.weight, W)


def storkey_by_loops(patterns: torch.Tensor) -> torch.Tensor:
    """Storkey (1997) entry by entry: W_ij += (ξ_i ξ_j - ξ_i h_ji - h_ij ξ_j) / N, h_ij = Σ_{k≠i,j} W_ik ξ_k."""
    N = patterns.shape[1]
    W = [[0.0] * N for _ in range(N)]
    for xi in patterns.tolist():
        h = [[sum(W[i][k] * xi[k] for k in range(N) if k not in (i, j)) for j in range(N)] for i in range(N)]
        W = [[W[i][j] + (xi[i] * xi[j] - xi[i] * h[j][i] - h[i][j] * xi[j]) / N if i != j else 0.0
              for j in range(N)] for i in range(N)]
    return torch.tensor(W)


def test_storkey_rule_is_its_formula():
    patterns = random_patterns(3, 5, seed=1)
    W = classic(patterns, rule="storkey").weight
    torch.testing.assert_close(W, storkey_by_loops(patterns))
    assert torch.allclose(W, W.T) and (W.diagonal() == 0).all()
    # the first pattern meets no crosstalk: Storkey's rule then is Hebb's
    torch.testing.assert_close(classic(patterns[:1], rule="storkey").weight, classic(patterns[:1]).weight)


@pytest.mark.parametrize("rule", ["hebbian", "storkey"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stored_patterns_are_fixed_points_at_low_load(rule, seed):
    patterns = random_patterns(5, 100, seed)  # P/N = 0.05
    net = classic(patterns, rule=rule)
    assert torch.equal(net.recall(patterns, steps=1), patterns)
    assert torch.equal(net.recall(flip(patterns, 0.1, seed), steps=20), patterns)


# --- the classic network: dynamics -----------------------------------------------------------

def random_symmetric_network(N: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(N, N, generator=generator)
    net = classic()
    net.weight = ((A + A.T) / 2).fill_diagonal_(0)
    net.threshold = 0.3 * torch.randn(N, generator=generator)
    states = torch.randint(0, 2, (16, N), generator=generator).float() * 2 - 1
    return net, states, generator


@pytest.mark.parametrize("seed", range(5))
def test_energy_never_rises_under_single_unit_updates(seed):
    net, states, generator = random_symmetric_network(12, seed)
    flips = 0
    for _ in range(4):  # sweeps
        for unit in torch.randperm(12, generator=generator).tolist():
            before_states, before = states.clone(), net.energy(states)
            net.update_unit_(states, unit)
            assert (net.energy(states) <= before + 1e-5).all(), f"energy rose at unit {unit}"
            flips += int((states != before_states).sum())
    assert flips > 0, "no unit ever changed: the check would be empty"


@pytest.mark.parametrize("seed", range(3))
def test_async_recall_ends_in_a_fixed_point(seed):
    net, states, generator = random_symmetric_network(12, seed)
    final = net.recall(states, steps=200, generator=generator)
    assert torch.equal(net.recall(final, steps=1, generator=generator), final)


def test_sync_can_two_cycle_while_async_converges():
    # One stored pattern (1, 1) of two units: W_01 = W_10 = 1/2. From (1, -1), updating both
    # at once swaps them forever; updating one at a time settles on ±(1, 1).
    start = torch.tensor([[1.0, -1.0]])
    sync = classic(torch.tensor([[1.0, 1.0]]), update="sync")
    once = sync.recall(start, steps=1)
    assert torch.equal(once, torch.tensor([[-1.0, 1.0]]))
    assert torch.equal(sync.recall(once, steps=1), start)  # a 2-cycle
    asynchronous = classic(torch.tensor([[1.0, 1.0]]), update="async")
    final = asynchronous.recall(start, steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(asynchronous.recall(final, steps=1), final)
    assert abs(float(final.sum())) == 2  # (1, 1) or (-1, -1)


def test_memory_size_comes_from_what_it_stores_or_loads():
    net = classic(random_patterns(4, 30, seed=0))
    assert net.num_units == 30
    with pytest.raises(ValueError, match="N=30 units"):
        net.store(random_patterns(2, 20, seed=1))
    with pytest.raises(ValueError, match="must be ±1"):
        net.store(torch.zeros(1, 30))
    rebuilt = classic()
    rebuilt.load_state_dict(net.state_dict())
    torch.testing.assert_close(rebuilt.weight, net.weight)
    with pytest.raises(RnnzooError, match="rule must be one of"):
        create_model("hopfield", rule="oja")


# --- the modern network as a memory ------------------------------------------------------------

def modern_memory(patterns: torch.Tensor, beta: float):
    net = create_model("modern_hopfield", input_size=patterns.shape[1], beta=beta)
    net.store(patterns)
    return net


def test_modern_update_is_x_softmax_beta_x_xi():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(4, 5, generator=generator)  # P = 4 patterns of d = 5 (rows)
    xi = torch.randn(3, 5, generator=generator)
    beta = 0.7
    expected = torch.stack([X.T @ torch.softmax(beta * (X @ x), dim=0) for x in xi])  # X softmax(β Xᵀ ξ), columns
    torch.testing.assert_close(modern_memory(X, beta).recall(xi, steps=1), expected)


def test_modern_retrieves_from_a_noisy_probe_in_one_step_beyond_n_patterns():
    patterns = random_patterns(128, 64, seed=0)  # P = 2N: far beyond the classic 0.138 N
    probes = flip(patterns[:16], 0.1, seed=1)
    torch.testing.assert_close(modern_memory(patterns, beta=1.0).recall(probes, steps=1), patterns[:16],
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("beta", [0.1, 1.0, 8.0])
def test_modern_energy_decreases_under_the_update(beta):
    generator = torch.Generator().manual_seed(int(beta * 10))
    X = torch.randn(10, 6, generator=generator)
    net = modern_memory(X, beta)
    state = 2 * torch.randn(32, 6, generator=generator)
    for _ in range(5):
        new = net.recall(state, steps=1)
        assert (net.energy(new) <= net.energy(state) + 1e-5).all()
        assert (net.energy(new) >= -1e-5).all()  # the constants make E >= 0
        state = new
    torch.testing.assert_close(net.energy(state), hopfield_energy(state, X, beta))


# --- the modern network as a sequence layer ----------------------------------------------------

def test_pads_get_no_weight():
    state, patterns = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, :]  # (B, 1, P)
    weights = association(state, patterns, 1.0, mask)
    assert (weights[1, :, 2:] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("options", [{}, {"num_heads": 2, "update_steps": 3}])
def test_sequence_layer_padded_equals_alone(options):
    torch.manual_seed(0)
    model = create_model("modern_hopfield", input_size=5, hidden_size=8, output_size=3, **options).eval()
    lengths = torch.tensor([7, 4, 1, 6])
    x = torch.randn(4, 7, 5) * 10  # loud pads: any weight on them would show
    out, state = model(x, lengths)
    assert out.shape == (4, 7, 3) and state == ()
    for b, length in enumerate(lengths.tolist()):
        alone, _ = model(x[b:b + 1, :length])
        torch.testing.assert_close(out[b, :length], alone[0], atol=1e-5, rtol=0)
        assert (out[b, length:] == 0).all()


def test_pooling_padded_equals_alone_and_learns_its_queries():
    torch.manual_seed(0)
    pool = HopfieldPooling(input_size=5, hidden_size=8, output_size=3, num_queries=2)
    lengths = torch.tensor([6, 2])
    x = torch.randn(2, 6, 5) * 10
    pooled = pool(x, lengths)
    assert pooled.shape == (2, 6) == (2, pool.output_size)
    for b, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(pooled[b], pool(x[b:b + 1, :length])[0], atol=1e-5, rtol=0)
    pooled.pow(2).sum().backward()
    assert pool.queries.grad is not None and pool.queries.grad.abs().sum() > 0


# --- the associative task through rnnzoo.api ---------------------------------------------------

def associative(model: str, patterns: int, *extra: str) -> list[str]:
    return [f"model={model}", "task=associative", "task.num_units=100", f"task.num_patterns={patterns}",
            "task.probes=200", "trainer.progress=false", *extra]


def test_classic_recalls_at_low_load_and_fails_at_high_load(tmp_path):
    low = train(compose_config(associative("hopfield", 5)), tmp_path / "low")  # P/N = 0.05
    high = train(compose_config(associative("hopfield", 30)), tmp_path / "high")  # P/N = 0.3
    assert low["test/exact_recall"] >= 0.95 and low["test/mean_overlap"] >= 0.99
    assert high["test/exact_recall"] <= 0.1 and high["test/mean_overlap"] < high["test/probe_overlap"]
    assert low["test/load"] == 0.05 and high["val/load"] == 0.3


@pytest.mark.parametrize("model, patterns, extra", [("hopfield", 12, ["model.rule=storkey"]),
                                                    ("modern_hopfield", 200, ["model.beta=1.0"])])
def test_run_folder_and_eval_from_the_checkpoint(tmp_path, model, patterns, extra):
    final = train(compose_config(associative(model, patterns, *extra)), tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == final
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    payload = torch.load(checkpoints / "best.pt", map_location="cpu", weights_only=True)
    assert {"config", "model", "step", "task", "best_metric"} <= set(payload)
    assert load_checkpoint_file(checkpoints / "last.pt")["step"] == final["train/steps"] == 1
    assert final["test/exact_recall"] >= 0.95  # Storkey at P/N = 0.12; modern at P/N = 2
    metrics = evaluate({"checkpoint": str(checkpoints / "best.pt"), "split": "test", "device": "cpu"},
                       tmp_path / "eval")
    assert metrics == {k: v for k, v in final.items() if k.startswith("test/")}


def test_resume_loads_the_stored_memory_instead_of_storing_again(tmp_path):
    config = associative("hopfield", 20)
    final = train(compose_config(config), tmp_path / "run")
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    resumed = train(compose_config([*config, f"resume={best}"]), tmp_path / "resumed")
    assert {k: v for k, v in resumed.items() if k != "train/seconds"} == \
        {k: v for k, v in final.items() if k != "train/seconds"}


def test_modern_hopfield_trains_on_copy_with_gradients(tmp_path):
    final = train(compose_config(["model=modern_hopfield", *TINY_COPY]), tmp_path)
    assert final["train/steps"] == 6


@pytest.mark.parametrize("model, task", [("lstm", "associative"), ("hopfield", "copy")])
def test_incompatible_pairs_fail_before_any_work(tmp_path, model, task):
    with pytest.raises(IncompatibleError, match=f"model '{model}' cannot serve task '{task}'"):
        train(compose_config([f"model={model}", f"task={task}"]), tmp_path)
    assert not (tmp_path / "checkpoints").exists()
