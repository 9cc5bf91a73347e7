"""The recording hook (rnnzoo.nn.inside): what each model records, that the numbers mean what
their names say (gates in [0, 1], attention rows summing to 1, energies falling), that
recording changes no output, and that nothing is recorded or copied outside a recording."""

from __future__ import annotations

import threading

import pytest
import torch

from rnnzoo.api import create_model
from rnnzoo.decoding import beam_search, greedy_search
from rnnzoo.nn import inside
from rnnzoo.nn.inside import Inside, join, record, recording

LENGTHS = torch.tensor([5, 3])  # a batch of 2 with unequal lengths
B, T, F, H = 2, 5, 4, 6


def features(seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(B, T, F)  # (B, T, F); the second row is padded past step 3


def model(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **options).eval()


def recorded(run) -> tuple[object, Inside]:
    """run() inside a recording, and run() again outside: (the output, what was recorded);
    the two outputs must agree (the recording takes the reference path where a kernel is fused)."""
    plain = run()
    with torch.no_grad(), recording() as seen:
        output = run()
    for a, b in zip(_tensors(plain), _tensors(output)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    return output, seen


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for part in output for t in _tensors(part)]
    return []


def shapes(seen: Inside) -> dict[str, tuple[int, ...]]:
    return {name: tuple(value.shape) for name, value in seen.items()}


def assert_gates(seen: Inside, names: list[str], lengths: torch.Tensor) -> None:
    """Gates lie in [0, 1] at real steps and are 0 past each sequence's end."""
    for name in names:
        gate = seen[name]  # (B, T, H)
        assert ((gate >= 0) & (gate <= 1)).all(), name
        for b, n in enumerate(lengths.tolist()):
            assert gate[b, n:].abs().sum() == 0, name
            assert gate[b, :n].abs().sum() > 0, name


# --- the hook itself ---------------------------------------------------------------------
def test_pieces_join_and_later_axes_are_zero_padded():
    steps = [torch.full((2, 1, k), float(k)) for k in (1, 2, 3)]  # a cached decoder: one key more per step
    joined = join(steps, along=1)
    assert joined.shape == (2, 3, 3)
    assert joined[0].tolist() == [[1, 0, 0], [2, 2, 0], [3, 3, 3]]


def test_record_outside_a_recording_does_nothing_and_recordings_do_not_nest():
    record("x", torch.ones(2))
    with recording() as seen:
        record("x", torch.ones(2), step=True)
        record("x", 2 * torch.ones(2), step=True)
        with pytest.raises(RuntimeError, match="do not nest"):
            with recording():
                pass
    assert seen["x"].tolist() == [[1, 2], [1, 2]]
    assert not inside.recording_now()


def test_a_record_is_a_copy_the_model_cannot_overwrite():
    state = torch.zeros(2)
    with recording() as seen:
        record("state", state)
        state.add_(1)  # Hopfield updates its state in place
    assert seen["state"].tolist() == [0, 0]



def test_a_recording_belongs_to_its_thread():
    """A server's other requests, in other threads, neither record into a page's recording nor
    leave their fused kernels, and may open recordings of their own meanwhile."""
    lstm = model("lstm", input_size=F, hidden_size=H)
    seen_there = {}

    def elsewhere() -> None:
        seen_there["recording_now"] = inside.recording_now()
        lstm(features(), LENGTHS)
        with recording() as own:
            lstm(features(), LENGTHS)
        seen_there["own"] = set(own)

    with torch.no_grad(), recording() as here:
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert dict(here) == {} and seen_there["recording_now"] is False
    assert "lstm.layer0.forward.input_gate" in seen_there["own"]

# --- recurrent models ----------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_records_its_gates_and_cell_norm_per_layer_and_direction(bidirectional):
    lstm = model("lstm", input_size=F, hidden_size=H, num_layers=2, bidirectional=bidirectional)
    _, seen = recorded(lambda: lstm(features(), LENGTHS))
    directions = ["forward", "backward"] if bidirectional else ["forward"]
    expected = {}
    for layer in (0, 1):
        for d in directions:
            for gate in ("input_gate", "forget_gate", "output_gate"):
                expected[f"lstm.layer{layer}.{d}.{gate}"] = (B, T, H)
            expected[f"lstm.layer{layer}.{d}.cell_norm"] = (B, T)
    assert shapes(seen) == expected
    assert_gates(seen, [n for n in expected if n.endswith("gate")], LENGTHS)


def test_lstm_backward_gates_are_in_token_order():
    """Row b alone and row b in a padded batch record the same gates at the same tokens."""
    lstm = model("lstm", input_size=F, hidden_size=H, bidirectional=True)
    x = features()
    with torch.no_grad(), recording() as batch:
        lstm(x, LENGTHS)
    with torch.no_grad(), recording() as alone:
        lstm(x[1:, :3], LENGTHS[1:])
    gate = "lstm.layer0.backward.input_gate"
    torch.testing.assert_close(batch[gate][1, :3], alone[gate][0], atol=1e-6, rtol=1e-6)


def test_the_fused_kernel_runs_outside_a_recording(monkeypatch):
    lstm = model("lstm", input_size=F, hidden_size=H)
    monkeypatch.setattr(type(lstm), "_forward_reference", lambda *a, **k: pytest.fail("the loop ran"))
    lstm(features(), LENGTHS)


# --- encoder-decoders ------------------------------------------------------------------------
VOCAB = dict(source_vocab_size=11, target_vocab_size=13, embedding_dim=8, hidden_size=H, attention_size=5,
             maxout_size=4)
SOURCE = torch.tensor([[4, 5, 6, 7, 8], [4, 9, 10, 0, 0]])  # (B, S): lengths 5 and 3
TARGET_IN = torch.tensor([[1, 4, 5, 6], [1, 7, 8, 0]])  # (B, T)


def assert_attention(weights: torch.Tensor, source_lengths: torch.Tensor) -> None:
    """Rows sum to 1 over each sentence's real source words; pads get 0."""
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    for b, n in enumerate(source_lengths.tolist()):
        assert weights[b, ..., n:].abs().sum() == 0


@pytest.mark.parametrize("decoder", ["gru", "lstm"])
def test_bahdanau_records_attention_per_target_step_under_teacher_forcing(decoder):
    net = model("bahdanau", decoder=decoder, **VOCAB)
    (_, weights), seen = recorded(lambda: net(SOURCE, LENGTHS, TARGET_IN))
    assert seen["bahdanau.attention"].shape == (B, 4, 5)
    torch.testing.assert_close(seen["bahdanau.attention"], weights)
    assert_attention(seen["bahdanau.attention"], LENGTHS)
    assert seen["bahdanau.encoder.layer0.backward.update_gate"].shape == (B, 5, H)
    gates = "input_gate" if decoder == "lstm" else "update_gate"
    assert seen[f"bahdanau.decoder.layer0.forward.{gates}"].shape == (B, 4, H)


def test_bahdanau_greedy_decoding_stacks_one_attention_row_per_output_token():
    net = model("bahdanau", **VOCAB)
    with torch.no_grad(), recording() as seen:
        hypotheses = greedy_search(net, SOURCE, LENGTHS, torch.tensor([6, 6]), bos=1, eos=2)
    attention = seen["bahdanau.attention"]  # (B, steps, S): every row is decoded until all are finished
    assert attention.shape == (B, max(len(a) for a in hypotheses.attention), 5)
    assert_attention(attention, LENGTHS)
    for b, returned in enumerate(hypotheses.attention):  # the search's own (steps_b, S_b), cut to the sentence
        torch.testing.assert_close(attention[b, :len(returned), :int(LENGTHS[b])], returned)

    with torch.no_grad(), recording() as beam:  # one beam: the same rows, so the same record
        beam_search(net, SOURCE, LENGTHS, torch.tensor([6, 6]), bos=1, eos=2, beam_size=1)
    torch.testing.assert_close(beam["bahdanau.attention"], attention)




def test_seq2seq_records_its_encoder_and_decoder_cells():
    net = model("seq2seq", **{k: v for k, v in VOCAB.items() if k != "attention_size"})
    _, seen = recorded(lambda: net(SOURCE, LENGTHS, TARGET_IN))
    assert shapes(seen) == {"seq2seq.encoder.layer0.forward.update_gate": (B, 5, H),
                            "seq2seq.encoder.layer0.forward.reset_gate": (B, 5, H),
                            "seq2seq.decoder.layer0.forward.update_gate": (B, 4, H),
                            "seq2seq.decoder.layer0.forward.reset_gate": (B, 4, H)}
    assert_gates(seen, [n for n in seen if ".encoder." in n], LENGTHS)

# --- transformers ----------------------------------------------------------------------------
TRANSFORMER = dict(d_model=8, num_heads=2, num_layers=2, dropout=0.0)
HEADS = 2


def assert_rows(weights: torch.Tensor, key_lengths: torch.Tensor | None = None, causal: bool = False) -> None:
    """(B, h, T, S) rows sum to 1; pad keys (past key_lengths) and, causal, future keys get 0."""
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    if key_lengths is not None:
        for b, n in enumerate(key_lengths.tolist()):
            assert weights[b, ..., n:].abs().sum() == 0
    if causal:
        assert torch.equal(weights, weights.tril())


def test_transformer_records_every_attention_per_layer_and_head_under_teacher_forcing():
    net = model("transformer", source_vocab_size=11, target_vocab_size=13, **TRANSFORMER)
    (_, last), seen = recorded(lambda: net(SOURCE, LENGTHS, TARGET_IN))
    expected = {}
    for i in (0, 1):
        expected[f"transformer.encoder.layer{i}.self_attention"] = (B, HEADS, 5, 5)
        expected[f"transformer.decoder.layer{i}.self_attention"] = (B, HEADS, 4, 4)
        expected[f"transformer.decoder.layer{i}.cross_attention"] = (B, HEADS, 4, 5)
    assert shapes(seen) == expected
    for i in (0, 1):
        assert_rows(seen[f"transformer.encoder.layer{i}.self_attention"], LENGTHS)
        assert_rows(seen[f"transformer.decoder.layer{i}.self_attention"], causal=True)
        assert_rows(seen[f"transformer.decoder.layer{i}.cross_attention"], LENGTHS)


def test_transformer_decoding_step_by_step_records_what_teacher_forcing_does():
    """One decode_step per token: the rows join into the (B, h, T, S) of teacher forcing, and the
    cached self-attention's growing key axis is zero-padded into the causal (B, h, T, T)."""
    net = model("transformer", source_vocab_size=11, target_vocab_size=13, **TRANSFORMER)
    with torch.no_grad(), recording() as forced:
        net(SOURCE, LENGTHS, TARGET_IN)
    with torch.no_grad(), recording() as stepped:
        memory = net.encode(SOURCE, LENGTHS)
        cache = net.start(memory)
        for previous in TARGET_IN.unbind(1):
            _, cache, _ = net.decode_step(previous, memory, cache)
    assert shapes(stepped) == shapes(forced)
    for name in forced:
        torch.testing.assert_close(stepped[name], forced[name], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", ["encoder", "decoder"])
def test_sequence_transformers_record_their_self_attention(shape):
    net = model("transformer", shape=shape, input_size=F, **TRANSFORMER)
    _, seen = recorded(lambda: net(features(), LENGTHS))
    assert shapes(seen) == {f"transformer.{shape}.layer{i}.self_attention": (B, HEADS, T, T) for i in (0, 1)}
    for weights in seen.values():
        assert_rows(weights, LENGTHS if shape == "encoder" else None, causal=shape == "decoder")


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_a_prompt_then_one_step_at_a_time_records_what_one_pass_does(name):
    """Generation: a prompt chunk, then one token per call with the state carried, joins up."""
    options = dict(shape="decoder", input_size=F, **TRANSFORMER) if name == "transformer" else \
        dict(input_size=F, hidden_size=H)
    net, x = model(name, **options), features()
    with torch.no_grad(), recording() as whole:
        net(x)
    with torch.no_grad(), recording() as pieces:
        _, state = net(x[:, :3])
        for t in range(3, T):
            _, state = net(x[:, t:t + 1], state=state)
    assert shapes(pieces) == shapes(whole)
    for key in whole:
        torch.testing.assert_close(pieces[key], whole[key], atol=1e-5, rtol=1e-5)

def test_bert_records_its_self_attention():
    bert = model("bert", vocab_size=20, hidden_size=8, num_heads=HEADS, num_layers=2)
    ids = torch.tensor([[1, 7, 8, 9, 2], [1, 10, 2, 0, 0]])  # (B, T): lengths 5 and 3
    lengths = torch.tensor([5, 3])
    _, seen = recorded(lambda: bert(ids, lengths))
    assert shapes(seen) == {f"bert.encoder.layer{i}.self_attention": (B, HEADS, 5, 5) for i in (0, 1)}
    for weights in seen.values():
        assert_rows(weights, lengths)


def test_the_fused_attention_kernel_runs_outside_a_recording(monkeypatch):
    from rnnzoo.nn.attention import MultiheadAttention
    net = model("transformer", shape="encoder", input_size=F, **TRANSFORMER)
    monkeypatch.setattr(MultiheadAttention, "attend_explicitly", lambda *a: pytest.fail("weights formed"))
    net(features(), LENGTHS)


# --- Hopfield networks -----------------------------------------------------------------------
def stored_and_probes(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """3 random ±1 patterns of 32 units, and 2 probes: patterns 0 and 1 with 8 units flipped."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.randint(0, 2, (3, 32), generator=generator).float() * 2 - 1  # (P, N)
    probes = patterns[:2].clone()
    probes[:, :8] *= -1
    return patterns, probes


@pytest.mark.parametrize("update", ["async", "sync"])
def test_hopfield_records_state_and_energy_of_every_sweep(update):
    net = model("hopfield", update=update)
    patterns, probes = stored_and_probes()
    net.store(patterns)
    run = lambda: net.recall(probes, 10, generator=torch.Generator().manual_seed(0))  # noqa: E731
    final, seen = recorded(run)
    sweeps = seen["hopfield.energy"].shape[1]
    assert shapes(seen) == {"hopfield.state": (B, sweeps, 32), "hopfield.energy": (B, sweeps)}
    assert 2 <= sweeps <= 11  # the probe, then one entry per sweep until nothing moves
    assert torch.equal(seen["hopfield.state"][:, 0], probes) and torch.equal(seen["hopfield.state"][:, -1], final)
    torch.testing.assert_close(seen["hopfield.energy"], net.energy(seen["hopfield.state"].flatten(0, 1)).view(B, -1))
    if update == "async":  # each single-unit update lowers E or keeps it
        assert (seen["hopfield.energy"].diff(dim=1) <= 1e-6).all()
        assert (seen["hopfield.energy"][:, -1] < seen["hopfield.energy"][:, 0]).all()


def test_modern_hopfield_records_state_and_energy_of_every_update():
    net = model("modern_hopfield", beta=0.5)
    patterns, probes = stored_and_probes()
    net.store(patterns)
    final, seen = recorded(lambda: net.recall(probes, 5))
    updates = seen["modern_hopfield.energy"].shape[1]
    assert shapes(seen) == {"modern_hopfield.state": (B, updates, 32), "modern_hopfield.energy": (B, updates)}
    torch.testing.assert_close(seen["modern_hopfield.state"][:, -1], final)
    assert (seen["modern_hopfield.energy"].diff(dim=1) <= 1e-5).all()  # CCCP: E never rises



def test_modern_hopfield_layer_records_its_association_weights():
    net = model("modern_hopfield", input_size=F, hidden_size=8, output_size=4, num_heads=2, update_steps=3)
    _, seen = recorded(lambda: net(features(), LENGTHS))
    assert shapes(seen) == {"modern_hopfield.association": (B, 3, 2, T, T)}
    assert_rows(seen["modern_hopfield.association"], LENGTHS)

# --- no cost outside a recording ---------------------------------------------------------------
def test_nothing_is_recorded_or_copied_outside_a_recording(monkeypatch):
    """Inside.add is where every copy is made: outside a recording no model may reach it."""
    monkeypatch.setattr(Inside, "add", lambda *a, **k: pytest.fail("recorded outside a recording"))
    model("lstm", input_size=F, hidden_size=H, impl="reference", bidirectional=True)(features(), LENGTHS)
    net = model("bahdanau", decoder="lstm", impl="reference", **VOCAB)
    net(SOURCE, LENGTHS, TARGET_IN)
    greedy_search(net, SOURCE, LENGTHS, torch.tensor([4, 4]), bos=1, eos=2)
    transformer = model("transformer", source_vocab_size=11, target_vocab_size=13, **TRANSFORMER)
    transformer(SOURCE, LENGTHS, TARGET_IN)
    greedy_search(transformer, SOURCE, LENGTHS, torch.tensor([4, 4]), bos=1, eos=2)
    model("transformer", shape="decoder", input_size=F, **TRANSFORMER)(features(), LENGTHS)
    model("bert", vocab_size=20, hidden_size=8, num_layers=1)(SOURCE, LENGTHS)
    patterns, probes = stored_and_probes()
    model("modern_hopfield", input_size=F, update_steps=2)(features(), LENGTHS)
    for name in ("hopfield", "modern_hopfield"):
        memory = model(name)
        memory.store(patterns)
        memory.recall(probes, 3)


@pytest.mark.parametrize("bidirectional, impl", [(False, "auto"), (True, "auto"), (True, "torch")])
def test_gru_records_its_update_and_reset_gates(bidirectional, impl):
    """impl=torch too: a recording asks for the gates, which only the loop forms."""
    gru = model("gru", input_size=F, hidden_size=H, bidirectional=bidirectional, impl=impl)
    _, seen = recorded(lambda: gru(features(), LENGTHS))
    names = [f"gru.layer0.{d}.{g}" for d in (["forward", "backward"] if bidirectional else ["forward"])
             for g in ("update_gate", "reset_gate")]
    assert shapes(seen) == {name: (B, T, H) for name in names}
    assert_gates(seen, names, LENGTHS)


def test_elman_records_its_hidden_state():
    elman = model("elman", input_size=F, hidden_size=H, num_layers=2)
    (outputs, _), seen = recorded(lambda: elman(features(), LENGTHS))
    assert shapes(seen) == {"elman.layer0.forward.hidden": (B, T, H), "elman.layer1.forward.hidden": (B, T, H)}
    torch.testing.assert_close(seen["elman.layer1.forward.hidden"], outputs)  # the top layer's h(t) is the output


@pytest.mark.parametrize("name", ["hopfield", "modern_hopfield"])
def test_the_associative_task_records_each_state_of_its_answer_once(name):
    """`rnnzoo serve`'s associative answer recalls one step at a time; the recording then holds
    the trajectory the answer lists, each state once (each one-step recall records two)."""
    from rnnzoo.api import build, plain

    from .conftest import compose_config
    task, network, _ = build(plain(compose_config(["task=associative", f"model={name}", "task.num_units=32",
                                                   "task.num_patterns=3"])))
    network.store(task.memories())
    probe = task.memories()[0].clone()
    probe[:8] *= -1
    answer, seen = recorded(lambda: task.recall_steps(network, probe, 10, torch.Generator().manual_seed(0)))
    assert len(answer["states"]) >= 2  # the probe moved
    assert seen[f"{name}.state"][0].tolist() == answer["states"]
    torch.testing.assert_close(seen[f"{name}.energy"][0], torch.tensor(answer["energies"]))
