"""Extending rnnzoo takes one file per kind: a model is its module and registration, a dataset its
source class. Here both are registered at run time, as a user's own module would, and trained
through the command line's entry point with no YAML written: the registry is the config."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from rnnzoo import cli
from rnnzoo.config import config_dir
from rnnzoo.data.examples import LabeledText
from rnnzoo.data.sources import FileDataset, FilesConfig, register
from rnnzoo.registry import DATASETS, MODELS, help_field, load_registries


# --- the model file -------------------------------------------------------------------------
@dataclass
class TinyRNNConfig:
    input_size: int = help_field(8, "features in per step (the task sets it)", ge=1)
    hidden_size: int = help_field(8, "state width", ge=1)


class TinyRNN(nn.Module):
    """h(t) = tanh(W x(t) + U h(t-1) + b): the smallest recurrent net, one step at a time."""

    def __init__(self, config: TinyRNNConfig) -> None:
        super().__init__()
        self.config = config
        self.output_size = config.hidden_size
        self.cell = nn.RNNCell(config.input_size, config.hidden_size)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        h = x.new_zeros(x.shape[0], self.output_size) if state is None else state  # (B, H)
        outputs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h  # (B, T, H), (B, H)


# --- the dataset file -----------------------------------------------------------------------
@dataclass
class MoodsConfig(FilesConfig):
    pass


class Moods(FileDataset):
    """Moods: 'label|text' lines in moods.txt."""

    kind = "labeled"
    files = {"train": "moods.txt"}

    def read(self, path: Path) -> list[LabeledText]:
        rows = (line.split("|", 1) for line in Path(path).read_text().splitlines() if line.strip())
        return [LabeledText(label, text.split()) for label, text in rows]


@pytest.fixture
def registered():
    """TinyRNN as model `tiny_rnn` and Moods as dataset `moods`, forgotten afterwards."""
    load_registries()
    MODELS.register("tiny_rnn", config=TinyRNNConfig, traits={"sequence", "causal"})(TinyRNN)
    register("moods", MoodsConfig)(Moods)
    yield
    MODELS.unregister("tiny_rnn")
    DATASETS.unregister("moods")


def test_a_model_and_a_dataset_registered_at_run_time_train_through_the_cli(registered, tmp_path, monkeypatch):
    data = tmp_path / "moods"
    data.mkdir()
    lines = [f"{'happy' if i % 2 else 'sad'}|{'sun joy warm' if i % 2 else 'rain grey cold'} day {i % 5}"
             for i in range(60)]
    (data / "moods.txt").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["pytest"])  # cli.main hands argv to Hydra
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # cli.main sets it for Hydra; gone again after the test
    cli.main(["train", "model=tiny_rnn", "task=classification", "dataset=moods", f"dataset.root={data}",
              "dataset.cache=false", "task.embedding_dim=8", "task.batch_size=8", "model.hidden_size=12",
              "trainer.max_steps=6", "trainer.eval_every=3", "trainer.device=cpu", "trainer.progress=false",
              f"hydra.run.dir={run}"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics, "the run wrote no metrics"
    checkpoint = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
    assert "tiny_rnn" in json.dumps(checkpoint.get("config", {}), default=str)
    assert "moods" in json.dumps(checkpoint.get("config", {}), default=str)
    assert not list(config_dir().rglob("tiny_rnn*")) and not list(config_dir().rglob("moods*"))  # no YAML


def test_registered_names_are_choices_of_the_cli(registered):
    cli._check_group_choices(["model=tiny_rnn", "dataset=moods", "model=bert_mini"])


def test_a_size_preset_is_a_variant_of_its_model_for_create_model_and_the_cli():
    from rnnzoo import create_model
    from rnnzoo.config import compose_train

    mini = create_model("bert_mini", vocab_size=50)
    assert (mini.config.hidden_size, mini.config.num_layers, mini.config.num_heads) == (256, 4, 4)
    assert create_model("bert_mini", vocab_size=50, num_layers=1).config.num_layers == 1
    model = compose_train(["task=pretraining", "model=bert_mini"]).model
    assert model.name == "bert" and (model.hidden_size, model.num_heads) == (256, 4)
    assert MODELS.entry("bert_mini").target is MODELS.get("bert") and "bert_mini" not in MODELS.names()
