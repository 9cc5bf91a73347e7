"""The foundation's quality promises, trained for real (marked slow: `make test-slow`)."""

from __future__ import annotations

import pytest

from rnnzoo.api import train

from .conftest import compose_config

pytestmark = pytest.mark.slow


def test_default_lstm_solves_the_default_copy_task(tmp_path):
    final = train(compose_config(["trainer.progress=false"]), tmp_path)
    assert final["test/recall_accuracy"] >= 0.99


def test_default_lstm_beats_the_adding_baseline_tenfold(tmp_path):
    final = train(compose_config(["task=adding", "trainer.progress=false"]), tmp_path)
    assert final["test/mse"] <= (1 / 6) / 10
