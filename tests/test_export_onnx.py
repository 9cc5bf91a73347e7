"""`rnnzoo export format=onnx`: every registered model on every task it serves, exported and run
with onnxruntime against PyTorch (within 1e-4) at another batch and length than the traced ones
(the dynamic axes at work); the CLI end to end; the user's mistakes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from rnnzoo import api, cli  # noqa: E402
from rnnzoo.errors import RnnzooError  # noqa: E402
from rnnzoo.export.graphs import TASKS_EXPORTED, graphs_of, task_graphs  # noqa: E402
from rnnzoo.export.onnx import CHECK_SIZE, export_graph, max_difference, session  # noqa: E402
from rnnzoo.models.traits import find_fit, model_traits  # noqa: E402
from rnnzoo.nn.recurrent import RecurrentConfig  # noqa: E402
from rnnzoo.registry import MODELS  # noqa: E402

from .conftest import TINY_COPY, compose_config, run_cli  # noqa: E402
from .test_classification import tiny_files as labeled_files  # noqa: E402
from .test_tagging import TINY_TAGGING  # noqa: E402
from .test_tagging import tiny_files as tagged_files  # noqa: E402

#: small sizes of each model (a model missing here fails the test below: add its row)
SIZES = {
    "lstm": ["model.hidden_size=8"], "gru": ["model.hidden_size=8"], "elman": ["model.hidden_size=8"],
    "jordan": ["model.hidden_size=8", "model.output_size=8"],
    "transformer": ["model.d_model=16", "model.num_heads=2", "model.num_layers=1"],
    "bert": ["model.hidden_size=16", "model.num_heads=2", "model.num_layers=1"],
    "modern_hopfield": ["model.hidden_size=8", "model.output_size=8"],
    "seq2seq": ["model.hidden_size=8", "model.embedding_dim=8", "model.maxout_size=8"],
    "bahdanau": ["model.hidden_size=8", "model.embedding_dim=8", "model.maxout_size=8", "model.attention_size=8"],
}
TEXT = "the cat sat on the mat. the dog ran home.\n" * 20


def task_overrides(task: str, tmp_path) -> list[str]:
    """A tiny run of `task` on data written into tmp_path (translation: a synthetic dataset)."""
    if task == "tagging":
        return [o for o in TINY_TAGGING if not o.startswith("model.")] + tagged_files(tmp_path)
    if task == "classification":
        return ["task=classification", "dataset=labeled_files", "task.embedding_dim=8", "task.batch_size=4",
                "trainer.device=cpu", *labeled_files(tmp_path)]
    if task == "generation":
        (tmp_path / "corpus.txt").write_text(TEXT)
        return ["task=generation", "dataset=text_files", f"dataset.train={tmp_path / 'corpus.txt'}",
                "task.embedding_dim=8", "task.bptt=8", "task.eval_batch_size=2"]
    return ["task=translation", "dataset=reversal", "dataset.train_size=32", "dataset.val_size=8",
            "dataset.test_size=8", "task.batch_size=4"]


def pairs() -> list[tuple[str, str]]:
    api.list_models()  # loads the registries
    return [(model, task) for model in MODELS.names() for task in TASKS_EXPORTED if find_fit(task, model) is not None]


def built(model: str, task: str, tmp_path, *extra: str):
    overrides = [*task_overrides(task, tmp_path), f"model={model}", *SIZES[model], *extra]
    if "token_input" in model_traits(model):  # it owns its embeddings: no character features beside them
        overrides = [o for o in overrides if not o.startswith("task.char_")]
    if task in ("tagging", "classification") and issubclass(MODELS.entry(model).config, RecurrentConfig):
        overrides.append("model.bidirectional=true")
    fit = find_fit(task, model)
    overrides += [f"model.{k}={v}" for k, v in fit.model.items()] + [f"task.{k}={v}" for k, v in fit.task.items()]
    torch.manual_seed(0)
    task_object, network, _ = api.build(api.plain(compose_config(overrides)))
    return task_object, network.eval()


def assert_exports_at_any_size(model: str, task: str, tmp_path, *extra: str) -> None:
    task_object, network = built(model, task, tmp_path, *extra)
    for graph in graphs_of(task, task_object, network):
        path = tmp_path / f"{graph.name}.onnx"
        export_graph(graph, path, 18)
        runtime = session(path)
        for size in [(1, 3), CHECK_SIZE, (4, 11)]:
            inputs = graph.random(*size, torch.Generator().manual_seed(sum(size)))
            assert max_difference(graph, runtime, inputs) <= 1e-4, (graph.name, size)


@pytest.mark.parametrize("model,task", pairs())
def test_every_model_exports_and_onnxruntime_agrees_at_other_sizes(tmp_path, model, task):
    assert_exports_at_any_size(model, task, tmp_path)


@pytest.mark.parametrize("model,task,option", [("lstm", "tagging", "model.impl=reference"),
                                               ("seq2seq", "translation", "model.encoder=jordan"),
                                               ("bahdanau", "translation", "model.impl=reference")])
def test_python_time_loops_inside_other_models_export_as_onnx_loops(tmp_path, model, task, option):
    assert_exports_at_any_size(model, task, tmp_path, option)


def test_a_graph_traced_to_one_length_fails_the_check_with_one_line(tmp_path):
    """Without the scripted loop, a trace unrolls jordan's loop: the check must catch it."""
    task_object, network = built("jordan", "classification", tmp_path)
    (graph,) = task_graphs("classification", task_object, network)
    export_graph(graph, tmp_path / "unrolled.onnx", 18)
    inputs = graph.random(*CHECK_SIZE, torch.Generator().manual_seed(0))
    with pytest.raises(RnnzooError, match=r"classifier.onnx fails in onnxruntime on inputs of 3 x 8: "):
        max_difference(graph, session(tmp_path / "unrolled.onnx"), inputs)


# --- the CLI, end to end ------------------------------------------------------------------------
def run_from_manifest(folder, sentences: list[list[str]]) -> np.ndarray:
    """Tags of whitespace-split sentences with onnxruntime, from the folder alone: what a user
    without rnnzoo writes (manifest.json, tokenizer.json, the graph; Viterbi left out)."""
    import onnxruntime as ort
    manifest = json.loads((folder / "manifest.json").read_text())
    vocab = json.loads((folder / manifest["files"]["vocab"]).read_text())
    index, unk = {w: i for i, w in enumerate(vocab["tokens"])}, manifest["special_ids"]["unk"]
    graph = manifest["graphs"]["tagger"]
    runtime = ort.InferenceSession(str(folder / graph["file"]), providers=["CPUExecutionProvider"])
    T = max(map(len, sentences))
    feed = {"ids": np.zeros((len(sentences), T), np.int64),
            "lengths": np.array([len(s) for s in sentences], np.int64)}
    for b, sentence in enumerate(sentences):
        feed["ids"][b, :len(sentence)] = [index.get(w, unk) for w in sentence]
    if "chars" in graph["inputs"]:
        chars = {c: i for i, c in enumerate(vocab["chars"])}
        feed["chars"] = np.zeros((len(sentences), T, 8), np.int64)
        for b, sentence in enumerate(sentences):
            for t, word in enumerate(sentence):
                feed["chars"][b, t, :len(word[:8])] = [chars.get(c, 1) for c in word[:8]]
    (emissions,) = runtime.run(["emissions"], feed)
    return emissions


def test_train_export_and_run_the_graph_without_rnnzoo(tmp_path):
    out = tmp_path / "onnx"
    api.train(compose_config([*TINY_TAGGING, *tagged_files(tmp_path), "model.hidden_size=8", "model.bidirectional=true",
                              "trainer.num_threads=1"]), tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoints" / "best.pt"
    exported = run_cli("export", f"checkpoint={checkpoint}", "format=onnx", f"out={out}")
    assert exported.returncode == 0, exported.stderr
    assert "check tagger.onnx on validation data: max |onnxruntime - pytorch|" in exported.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "tagging" and manifest["graphs"]["tagger"]["outputs"]["emissions"]["shape"][:2] == [
        "batch", "length"]
    assert json.loads((out / "crf.json").read_text())["transitions"]

    sentences = [["the", "cat", "sat", "on", "a", "mat"], ["the", "zebra", "ran"]]
    emissions = run_from_manifest(out, sentences)
    network, task, _ = api.load_run(checkpoint)
    from rnnzoo.data import TaggedSentence
    items = [task.cut_input(task.encode(TaggedSentence(s, ["O"] * len(s)))) for s in sentences]
    batch = task.collate([(ids, [0] * len(tags), ch, st) for ids, tags, ch, st in items])
    with torch.no_grad():
        expected = network(batch).numpy()
    assert emissions.shape == expected.shape == (2, 6, len(task.tags))
    real = batch.mask.numpy()
    assert np.abs(emissions - expected)[real].max() <= 1e-4


# --- the user's mistakes ----------------------------------------------------------------------------
def export_in_process(capsys, *args: str) -> tuple[int, str]:
    """`rnnzoo export ARGS` through the CLI's entry point in this process: (exit status, stderr)."""
    try:
        cli.main(["export", *args])
        status = 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    return status, capsys.readouterr().err


def trained(folder, overrides: list[str]):
    """The best.pt of a one-step run in `folder`."""
    api.train(compose_config([*overrides, "trainer.max_steps=1", "trainer.eval_every=1", "trainer.progress=false",
                              "trainer.num_threads=1"]), folder / "run")
    return folder / "run" / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classification")
    return trained(folder, ["task=classification", "dataset=labeled_files", "model.hidden_size=8",
                            "task.embedding_dim=8", *labeled_files(folder)])


@pytest.mark.parametrize("case,message", [
    ("format", "format='tflite' is not an export format; choices: hf"),
    ("not_empty", "is not empty: choose another folder or set overwrite=true"),
    ("not_a_checkpoint", "notes.pt is not a"),
    ("opset", "opset"),
])
def test_mistakes_are_one_line_errors(tmp_path, tiny_checkpoint, capsys, case, message):
    out = tmp_path / "out"
    checkpoint = tiny_checkpoint
    fmt = "tflite" if case == "format" else "onnx"
    if case == "not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    if case == "not_a_checkpoint":
        checkpoint = tmp_path / "notes.pt"
        checkpoint.write_text("not a checkpoint")
    extra = ["opset=13"] if case == "opset" else []
    status, err = export_in_process(capsys, f"checkpoint={checkpoint}", f"format={fmt}", f"out={out}", *extra)
    assert status == 2 and message in err and "Traceback" not in err, err
    if case == "not_empty":
        assert (out / "keep.txt").read_text() == "mine"


def test_overwrite_replaces_the_folder_and_the_graph_classifies(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.onnx").write_text("old")
    (out / "notes.txt").write_text("mine")
    status, err = export_in_process(capsys, f"checkpoint={tiny_checkpoint}", "format=onnx", f"out={out}",
                                    "overwrite=true")
    assert status == 0, err
    assert not (out / "old.onnx").exists() and (out / "notes.txt").read_text() == "mine"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graphs"]["classifier"]["outputs"]["logits"]["shape"] == ["batch", 2]


def test_a_task_without_graphs_is_refused_by_name(tmp_path, capsys):
    checkpoint = trained(tmp_path, TINY_COPY)
    status, err = export_in_process(capsys, f"checkpoint={checkpoint}", "format=onnx", f"out={tmp_path / 'out'}")
    assert status == 2 and "format=onnx exports checkpoints of the tasks tagging" in err
    assert "one of task 'copy'" in err


# --- the step graphs, run as a runtime runs them ----------------------------------------------------
@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_stepping_from_the_start_state_continues_the_text_as_pytorch_reads_it_whole(tmp_path, model):
    task_object, network = built(model, "generation", tmp_path)
    (graph,) = graphs_of("generation", task_object, network)
    export_graph(graph, tmp_path / "step.onnx", 18)
    runtime = session(tmp_path / "step.onnx")
    ids = torch.randint(0, task_object.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole, _ = network(ids, None, None)  # (B, T, V)
    state = [t.numpy() for t in graph.start(2)]  # an RNN's zeros, or a KV cache of no position
    for t in range(ids.shape[1]):
        logits, *state = runtime.run(graph.output_names, {"ids": ids[:, t:t + 1].numpy(),
                                                           **dict(zip(graph.input_names[1:], state))})
        assert np.abs(logits[:, 0] - whole[:, t].numpy()).max() <= 1e-4, t


@pytest.mark.parametrize("model", ["bahdanau", "transformer"])
def test_greedy_decoding_with_onnxruntime_writes_what_pytorch_writes(tmp_path, model):
    task_object, network = built(model, "translation", tmp_path)
    encoder, step = graphs_of("translation", task_object, network)
    runtimes = {}
    for graph in (encoder, step):
        export_graph(graph, tmp_path / f"{graph.name}.onnx", 18)
        runtimes[graph.name] = session(tmp_path / f"{graph.name}.onnx")
    source, lengths = encoder.random(3, 6, torch.Generator().manual_seed(2))
    outputs = dict(zip(encoder.output_names, runtimes["encoder"].run(None, {"source": source.numpy(),
                                                                          "source_lengths": lengths.numpy()})))
    wanted = {i.name for i in runtimes["decoder_step"].get_inputs()}
    previous = np.full(3, task_object.specials["<bos>"], np.int64)
    memory = network.encode(source, lengths)
    cache = network.start(memory)
    for _ in range(5):
        feed = {name: value for name, value in outputs.items() if name in wanted}
        result = dict(zip(step.output_names, runtimes["decoder_step"].run(None, {**feed, "previous": previous})))
        with torch.no_grad():
            logits, cache, _ = network.decode_step(torch.from_numpy(previous), memory, cache)
        assert np.abs(result["logits"] - logits.numpy()).max() <= 1e-4
        previous = result["logits"].argmax(-1)
        assert np.array_equal(previous, logits.argmax(-1).numpy())
        outputs.update({name.removeprefix("new_"): value for name, value in result.items() if name.startswith("new_")})


# --- the benchmark ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_onnx_prints_one_row_per_graph_and_size_with_agreeing_outputs(capsys):
    from scripts import bench_onnx
    bench_onnx.main(["--rounds", "1", "--repeats", "1", "--batch", "2", "--length", "6", "--vocab", "400"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == 8 and {r[0].split()[0] for r in rows} == {"tagging", "classification", "generation"}
    for row in rows:
        pytorch, runtime, difference = (float(c.strip().rstrip("x").replace(",", "")) for c in (row[3], row[4], row[6]))
        assert pytorch > 0 and runtime > 0 and difference <= 1e-4, row


def test_a_subword_model_exports_its_hugging_face_tokenizer_beside_the_graph(tmp_path, capsys):
    tokenizers = pytest.importorskip("tokenizers")
    checkpoint = trained(tmp_path, [*task_overrides("generation", tmp_path), "task.level=bpe", "task.vocab_size=300",
                                    "model=gru", "model.hidden_size=8"])
    status, err = export_in_process(capsys, f"checkpoint={checkpoint}", "format=onnx", f"out={tmp_path / 'out'}")
    assert status == 0, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["tokenizer_level"] == "bpe" and manifest["files"]["tokenizer_hf"] == "tokenizer.hf.json"
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.hf.json"))
    _, task, _ = api.load_run(checkpoint)
    text = "the cat ran home."
    assert hf.encode(text).ids == task.tokenizer.encode(text)
    assert manifest["start"] == {"state": {"shape": [1, 1, 8], "fill": 0.0}}
