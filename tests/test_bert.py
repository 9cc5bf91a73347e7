"""BERT and masked-LM pretraining: the masking recipe, tied weights, padding, a pretraining run
whose loss drops, fine-tuning from it with model.init_from (weights and tokenizer inherited, the
fine-tuned checkpoint standing alone), tagging with BERT, the error messages, and the listing."""

from __future__ import annotations

import pytest
import torch

from rnnzoo import api
from rnnzoo.cli import _check_group_choices
from rnnzoo.data import LabeledText, TaggedSentence
from rnnzoo.errors import IncompatibleError, RnnzooError
from rnnzoo.listing import overview
from rnnzoo.tasks.pretraining import mask_tokens
from rnnzoo.training.checkpoint import load_checkpoint_file, save_checkpoint

from .conftest import compose_config
from .test_classification import labeled_lines
from .test_classification import tiny_files as labeled_files
from .test_tagging import tiny_files as conll_files

torch.set_num_threads(1)

TINY_BERT = ["model=bert", "model.hidden_size=32", "model.num_heads=2", "model.num_layers=1", "model.d_ff=64"]
RUN = ["trainer.progress=false", "trainer.device=cpu", "trainer.log_every=5"]
PRETRAIN = ["task=pretraining", "dataset=text_files", *TINY_BERT, "model.norm=pre", *RUN, "task.vocab_size=80",
            "task.max_length=32",
            "task.batch_size=8", "trainer.max_steps=30", "trainer.eval_every=15", "trainer.lr=3e-3"]
FINETUNE = ["task=classification", "dataset=labeled_files", "model=bert", "task.pooling=first", "task.batch_size=4",
            "trainer.max_steps=4", "trainer.eval_every=2", *RUN]


def bert(**overrides):
    torch.manual_seed(0)
    return api.create_model("bert", **{"vocab_size": 50, "hidden_size": 16, "num_heads": 2, "num_layers": 2,
                                       **overrides}).eval()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny BERT pretrained on the sentences of the tiny labeled files (in-domain, labels dropped)."""
    folder = tmp_path_factory.mktemp("pretrain")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(line.split("\t", 1)[1] for line in labeled_lines(400, 7)) + "\n")
    final = api.train(compose_config([*PRETRAIN, f"dataset.train={corpus}"]), folder / "run")
    return folder / "run" / "checkpoints" / "best.pt", final


# --- the model ---------------------------------------------------------------------------------
def test_the_mlm_decoder_weight_is_the_token_embedding():
    model = bert()
    assert model.mlm.decoder.weight is model.embeddings.tokens.weight
    assert model.mlm.decoder.bias is not None and model.mlm.decoder.bias.shape == (50,)
    assert model.mlm_logits(torch.randn(3, 16)).shape == (3, 50)


def test_padding_changes_nothing_for_the_real_tokens():
    model = bert(next_sentence=True)
    long, short = torch.randint(5, 50, (1, 9)), torch.randint(5, 50, (1, 4))
    batch = torch.zeros(2, 9, dtype=torch.long)
    batch[0], batch[1, :4] = long[0], short[0]
    with torch.no_grad():
        together, _ = model(batch, torch.tensor([9, 4]))  # (2, 9, H)
        alone, _ = model(short, torch.tensor([4]))  # (1, 4, H)
        assert torch.allclose(together[1, :4], alone[0], atol=1e-5)
        assert together[1, 4:].eq(0).all()
        assert torch.allclose(model.nsp_logits(together)[1], model.nsp_logits(alone)[0], atol=1e-5)


def test_initialization_is_berts():
    model = bert()
    weight = model.encoder.layers[0].feed_forward.inner.weight
    assert abs(weight.std().item() - 0.02) < 0.003 and model.encoder.layers[0].feed_forward.inner.bias.eq(0).all()
    assert model.embeddings.tokens.weight[0].eq(0).all()  # <pad>


def test_bad_sizes_name_the_option():
    with pytest.raises(RnnzooError, match="hidden_size=30 must be divisible by num_heads=4"):
        api.create_model("bert", vocab_size=50, hidden_size=30, num_heads=4)
    with pytest.raises(RnnzooError, match="vocab_size must exceed"):
        api.create_model("bert")
    with pytest.raises(RnnzooError, match=r"pad_id=50 is not a token id: it must be in \[0, vocab_size=50\)"):
        api.create_model("bert", vocab_size=50, pad_id=50)


def test_the_padding_row_is_the_pad_id_zero_and_without_gradient():
    bert = api.create_model("bert", vocab_size=50, pad_id=7, hidden_size=16, num_heads=2)
    rows = bert.embeddings.tokens.weight
    assert rows[7].abs().sum() == 0 and rows[0].abs().sum() > 0
    hidden, _ = bert(torch.tensor([[2, 7, 0, 9]]))
    hidden.sum().backward()
    assert rows.grad[7].abs().sum() == 0 and rows.grad[0].abs().sum() > 0


# --- masking ---------------------------------------------------------------------------------------
def test_masking_follows_berts_proportions_and_never_touches_specials():
    V, generator = 1000, torch.Generator().manual_seed(0)
    ids = torch.randint(5, V, (64, 128), generator=generator)
    ids[:, 0], ids[:, 100], ids[:, 101:] = 2, 3, 0  # <bos> ... <eos> then pads
    ids[:, 50] = 1  # an <unk> in every row
    corrupted, chosen = mask_tokens(ids, 0.15, V, 4, torch.Generator().manual_seed(1))
    real = ids >= 5
    assert not (chosen & ~real).any() and corrupted[~chosen].equal(ids[~chosen])
    assert abs(chosen.sum() / real.sum() - 0.15) < 0.01
    masked = (corrupted == 4) & chosen
    kept = (corrupted == ids) & chosen
    randomized = chosen & ~masked & ~kept
    for share, expected in [(masked, 0.8), (randomized, 0.1), (kept, 0.1)]:
        assert abs(share.sum() / chosen.sum() - expected) < 0.03
    assert (corrupted[randomized] >= 5).all()
    again = mask_tokens(ids, 0.15, V, 4, torch.Generator().manual_seed(1))
    assert again[0].equal(corrupted) and again[1].equal(chosen)


def test_task_masks_depend_on_seed_split_epoch_and_batch_only(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(line.split("\t", 1)[1] for line in labeled_lines(200, 3)) + "\n")
    config = api.plain(compose_config([*PRETRAIN, f"dataset.train={corpus}"]))

    def first_batches(task_state=None):
        task, _, _ = api.build(dict(config), task_state)
        return task, next(task.train_batches(0)), next(task.train_batches(1)), task.eval_batches("val")[0]

    task, epoch0, epoch1, val = first_batches()
    # the same tokenizer (HF's WordPiece trainer breaks ties differently from run to run)
    _, epoch0_again, _, val_again = first_batches(task.state_dict())
    assert epoch0.inputs.equal(epoch0_again.inputs) and epoch0.mask.equal(epoch0_again.mask)
    assert val.mask.equal(val_again.mask) and val is task.eval_batches("val")[0]  # fixed
    assert not (epoch0.mask.shape == epoch1.mask.shape and epoch0.mask.equal(epoch1.mask))
    bos, eos = task.tokenizer.vocab.bos_id, task.tokenizer.vocab.eos_id
    assert (epoch0.targets[:, 0] == bos).all() and (epoch0.targets[epoch0.mask] > 4).all()
    last = epoch0.targets[torch.arange(len(epoch0.lengths)), epoch0.lengths - 1]
    assert (last == eos).all() and int(epoch0.lengths.max()) <= 32


# --- pretraining, then fine-tuning from it ---------------------------------------------------------
def test_more_text_joins_the_training_text_only(tmp_path, monkeypatch):
    """task.more_text adds other datasets' training sentences (labels dropped) to the training text and
    the tokenizer; validation stays the main dataset's; a bad name lists the choices."""
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(tmp_path / "data"))
    trec = tmp_path / "data" / "trec"
    trec.mkdir(parents=True)
    (trec / "train_5500.label").write_text("NUM:dist how far is zanzibar from quixotry ?\n")
    (trec / "TREC_10.label").write_text("LOC:city where is xylophonia ?\n")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(line.split("\t", 1)[1] for line in labeled_lines(40, 3)) + "\n")
    config = api.plain(compose_config([*PRETRAIN, f"dataset.train={corpus}", "task.more_text=[trec]",
                                       "task.vocab_size=2000"]))
    task, _, _ = api.build(config)
    train, val = task.sentences("train"), task.sentences("val")
    assert train[-1] == "how far is zanzibar from quixotry ?" and not any("zanzibar" in s for s in val)
    assert not any("xylophonia" in s for s in train)  # trec's test split stays out
    # the tokenizer learned trec's words: one piece each, where an unseen word takes several
    assert len(task.tokenizer.encode("zanzibar")) == 1 and len(task.tokenizer.encode("xylophonia")) > 1
    packed = [ids for ids, _, _ in task.encoded("train")]
    assert task.tokenizer.encode("quixotry")[0] in packed[-1]
    with pytest.raises(RnnzooError, match=r"task.more_text: unknown dataset 'tre'.*choices: .*trec"):
        api.build(api.plain(compose_config([*PRETRAIN, f"dataset.train={corpus}", "task.more_text=[tre]"])))


def test_pretraining_loss_drops_and_reports_its_metrics(pretrained):
    path, final = pretrained
    history = load_checkpoint_file(path.parent / "last.pt")["history"]
    assert history[-1][1] < history[0][1] - 0.5, history  # nats per masked token, from about ln(80) = 4.4
    assert {"test/loss", "test/ppl", "test/mlm_accuracy"} <= set(final)


def test_fine_tuning_starts_from_the_pretrained_weights_and_tokenizer(tmp_path, pretrained):
    path, _ = pretrained
    payload = load_checkpoint_file(path)
    config = api.plain(compose_config([*FINETUNE, *labeled_files(tmp_path), f"model.init_from={path}",
                                       "model.dropout=0.2"]))
    task, network, _ = api.build(config)
    weights = {k[len("body."):]: v for k, v in payload["model"].items() if k.startswith("body.")}
    assert weights and all(torch.equal(network.body.state_dict()[k], v) for k, v in weights.items())
    assert task.tokenizer.vocab.itos == api.load_run(path)[1].tokenizer.vocab.itos
    # the architecture is the pretrained one (not bert.yaml's 128), the dropout this run's
    assert config["model"]["hidden_size"] == 32 and network.body.config.dropout == 0.2
    assert config["model"]["norm"] == "pre" and network.body.encoder.final_norm is not None  # pre-LN inherited
    batch = task.collate([task.encode(LabeledText("pos", ["a", "lovely", "film"]))])
    assert batch.inputs[0, 0] == task.tokenizer.vocab.bos_id and batch.inputs[0, -1] == task.tokenizer.vocab.eos_id


def test_the_fine_tuned_checkpoint_stands_alone(tmp_path, pretrained):
    path, _ = pretrained
    copy = tmp_path / "pretrained.pt"
    copy.write_bytes(path.read_bytes())
    run = tmp_path / "run"
    final = api.train(compose_config([*FINETUNE, *labeled_files(tmp_path), f"model.init_from={copy}"]), run)
    copy.unlink()
    checkpoint = run / "checkpoints" / "best.pt"
    evaluated = api.evaluate({"checkpoint": str(checkpoint), "split": "test", "trainer": {"device": "cpu"}})
    assert evaluated == pytest.approx({k: v for k, v in final.items() if k.startswith("test/")})
    answers = list(api.predict({"checkpoint": str(checkpoint), "trainer": {"device": "cpu"}}, ["a lovely film", ""]))
    assert answers[0] in {"pos", "neg"} and answers[1] == ""


def test_init_from_errors_name_the_file_and_the_models(tmp_path):
    files = labeled_files(tmp_path)
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(RnnzooError, match=f"model.init_from: checkpoint not found: {missing}"):
        api.build(api.plain(compose_config([*FINETUNE, *files, f"model.init_from={missing}"])))
    lstm_run = tmp_path / "lstm.pt"
    save_checkpoint({"config": {"model": {"name": "lstm"}, "task": {"name": "classification"}}, "model": {},
                     "task": {}}, lstm_run)
    with pytest.raises(RnnzooError, match="checkpoint of model 'lstm'.*model 'bert' can only start from"):
        api.build(api.plain(compose_config([*FINETUNE, *files, f"model.init_from={lstm_run}"])))


# --- tagging, classification poolings, pairs --------------------------------------------------------
@pytest.mark.parametrize("level", ["word", "wordpiece"])
def test_bert_tags_each_word_from_its_first_piece_after_the_cls(tmp_path, level):
    config = api.plain(compose_config(["task=tagging", "dataset=conll_files", *conll_files(tmp_path), *TINY_BERT,
                                       *RUN, f"task.tokenizer={level}", "task.vocab_size=60", "task.batch_size=4"]))
    task, network, _ = api.build(config)
    words = "the big red dog ran home".split()
    ids, _, _, starts = task.encode(TaggedSentence(words, ["O"] * len(words)))
    assert ids[0] == task.tokenizer.vocab.bos_id and ids[-1] == task.tokenizer.vocab.eos_id
    assert [task.tokenizer.decode(ids[a:b]).strip() for a, b in zip(starts, [*starts[1:], len(ids) - 1])] == words
    out = task.step(network.train(), next(task.train_batches(0)), None)
    out.loss.backward()
    assert torch.isfinite(out.loss) and network.body.embeddings.tokens.weight.grad is not None
    with torch.no_grad():
        tags = list(task.predict(network.eval(), [" ".join(words), "the cat sat"], torch.device("cpu")))
        alone = list(task.predict(network, ["the cat sat"], torch.device("cpu")))
    assert [len(t.split()) for t in tags] == [6, 3] and tags[1] == alone[0]


def test_first_pooling_reads_the_cls_through_the_pooler_and_ignores_padding(tmp_path):
    config = api.plain(compose_config([*FINETUNE, *labeled_files(tmp_path), *TINY_BERT[1:],
                                       "model.next_sentence=true"]))
    task, network, _ = api.build(config)
    network.eval()
    short = task.encode(LabeledText("pos", ["good", "film"]))
    long = task.encode(LabeledText("neg", "the film was really quite a boring story".split()))
    with torch.no_grad():
        together, alone = network(task.collate([long, short])), network(task.collate([short]))
        hidden, _ = network.body(task.collate([short]).inputs)
        pooled = network.pool(hidden, None, None)
    assert torch.allclose(together[1], alone[0], atol=1e-5)
    assert torch.allclose(pooled, torch.tanh(network.body.pooler(hidden[:, 0])))


def test_next_sentence_pairs_have_segments_and_both_labels(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(line.split("\t", 1)[1] for line in labeled_lines(300, 5)) + "\n")
    config = api.plain(compose_config([*PRETRAIN, f"dataset.train={corpus}", "model.next_sentence=true"]))
    task, network, _ = api.build(config)
    batch = next(task.train_batches(0))
    eos = task.tokenizer.vocab.eos_id
    for ids, segments, n in zip(batch.targets.tolist(), batch.segments.tolist(), batch.lengths.tolist()):
        first_eos = ids.index(eos)
        assert segments[:first_eos + 1] == [0] * (first_eos + 1)  # <bos> A <eos>
        assert segments[first_eos + 1:n] == [1] * (n - first_eos - 1)  # B <eos>
        assert ids[n - 1] == eos
    labels = torch.tensor([item[2] for item in task.encoded("train")], dtype=torch.float)
    assert 0.3 < labels.mean() < 0.7
    out = task.step(network.train(), batch, None)
    out.loss.backward()
    assert network.body.nsp.weight.grad is not None
    assert {"nsp_accuracy", "nsp_loss", "mlm_loss"} <= set(task.metrics({k: float(v) for k, v in out.stats.items()}))


# --- fitting tasks, presets --------------------------------------------------------------------------
def test_bert_fits_the_text_tasks_only():
    for task in ("classification", "tagging", "pretraining"):
        assert "bert" in api.models_fitting(task)
    for task in ("copy", "adding", "generation", "translation"):
        assert "bert" not in api.models_fitting(task)
    assert api.models_fitting("pretraining") == ["bert"]
    with pytest.raises(IncompatibleError, match="token ids.*token_input.*cannot feed"):
        api.check_compatible("copy", "bert", None)
    rows = overview().splitlines()
    header = next(i for i, line in enumerate(rows) if line.startswith("which model fits"))
    tasks = rows[header + 1].split()
    cells = next(line for line in rows[header + 2:] if line.split()[0] == "bert").split()[1:]
    assert {t for t, cell in zip(tasks, cells) if cell == "y"} == {"classification", "tagging", "pretraining"}


def test_size_presets_configure_the_registered_bert():
    _check_group_choices(["model=bert_mini", "model=bert_small"])
    config = compose_config(["task=pretraining", "model=bert_small"])
    assert config.model.name == "bert" and (config.model.hidden_size, config.model.num_heads) == (512, 8)
    with pytest.raises(RnnzooError, match="unknown model 'bert_huge'"):
        _check_group_choices(["model=bert_huge"])


# --- recipes and data -------------------------------------------------------------------------------
def test_recipes_compose_and_fine_tuning_requires_its_checkpoint():
    pretrain = compose_config(["experiment=sst2_bert_pretrain"])
    assert (pretrain.task.name, pretrain.model.name, pretrain.dataset.phrases) == ("pretraining", "bert", True)
    finetune, scratch = (api.plain(compose_config([f"experiment=sst2_bert_{name}"]))
                         for name in ("finetune", "scratch"))
    assert finetune["trainer"] == scratch["trainer"] and scratch["model"]["init_from"] is None
    # both learn from GLUE's labelled phrases, the training set of BERT-Tiny's published 83.2
    assert finetune["dataset"] == scratch["dataset"] and scratch["dataset"]["phrases"] is True
    # the same task but the readout, which each arm picks by its validation accuracy
    assert {**finetune["task"], "pooling": "first"} == scratch["task"]
    assert (finetune["task"]["pooling"], scratch["task"]["pooling"]) == ("mean", "first")
    with pytest.raises(RnnzooError, match=r"model.init_from is required"):
        api.build(finetune)


def test_sst2_phrases_replace_the_training_sentences_and_skip_the_header(tmp_path):
    from rnnzoo.data import open_dataset
    (tmp_path / "glue_sst2_train_phrases.tsv").write_text("label\tsentence\r\n0\ta dull film\r\n1\tgood\r\n")
    for split in ("train", "dev", "test"):
        (tmp_path / f"stsa.binary.{split}").write_text("1 a good film\n")
    phrases = open_dataset("sst2", root=str(tmp_path), phrases=True).load("train")
    assert [(e.label, e.tokens) for e in phrases] == [("0", ["a", "dull", "film"]), ("1", ["good"])]
    assert len(open_dataset("sst2", root=str(tmp_path)).load("train")) == 1


def test_predict_fills_in_the_masks(pretrained):
    network, task, _ = api.load_run(pretrained[0])
    with torch.no_grad():
        answers = list(task.predict(network, ["the film was <mask> good", "", "no masks here"], torch.device("cpu")))
    assert len(answers) == 3 and answers[1] == "" and "<mask>" not in answers[0]
    assert answers[0].startswith("the film was ") and answers[0].endswith(" good")
