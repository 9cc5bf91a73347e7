"""The registry: registration, duplicates, unknown names with close matches, wildcards, typed configs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import rnnzoo
from rnnzoo.errors import RnnzooError
from rnnzoo.registry import MODELS, TASKS, Registry, help_field, help_text


@dataclass
class ToyConfig:
    width: int = help_field(4, "how wide")
    rate: float = help_field(0.5, "how fast")


def make_registry() -> Registry:
    registry = Registry("widget")
    registry.register("alpha", config=ToyConfig)(object)
    registry.register("alpine", config=ToyConfig)(object)
    registry.register("beta")(object)
    return registry


def test_duplicate_name_is_an_error():
    registry = make_registry()
    with pytest.raises(RnnzooError, match="already registered"):
        registry.register("alpha")(object)


def test_unknown_name_lists_close_matches_and_all_choices():
    with pytest.raises(RnnzooError) as error:
        make_registry().get("alpah")
    message = str(error.value)
    assert "unknown widget 'alpah'" in message
    assert "did you mean: alpha" in message
    assert "choices: alpha, alpine, beta" in message


def test_wildcard_listing():
    registry = make_registry()
    assert registry.names() == ["alpha", "alpine", "beta"]
    assert registry.names("alp*") == ["alpha", "alpine"]
    assert registry.names("*ta") == ["beta"]
    assert registry.names("zzz*") == []


def test_config_is_typed_and_names_bad_keys():
    entry = make_registry().entry("alpha")
    assert entry.make_config({"width": 7}) == ToyConfig(width=7, rate=0.5)
    with pytest.raises(RnnzooError, match="unknown option 'colour'.*width, rate"):
        entry.make_config({"colour": "red"})
    with pytest.raises(RnnzooError, match="bad value for 'width'"):
        entry.make_config({"width": "wide"})


def test_config_must_be_a_dataclass():
    with pytest.raises(TypeError, match="must be a dataclass"):
        Registry("widget").register("x", config=dict)


def test_help_text_carries_defaults_and_help():
    rows = help_text(ToyConfig)
    assert rows[0] == ("width", "int", 4, "how wide")


def test_public_api_lists_and_creates_models():
    assert "lstm" in rnnzoo.list_models()
    assert rnnzoo.list_models("ls*") == ["lstm"]
    model = rnnzoo.create_model("lstm", input_size=16, hidden_size=32)
    import torch
    out, (h, c) = model(torch.zeros(2, 5, 16))
    assert out.shape == (2, 5, 32) and h.shape == c.shape == (1, 2, 32)


def test_create_model_rejects_bad_options():
    with pytest.raises(RnnzooError, match="unknown option 'hidden'"):
        rnnzoo.create_model("lstm", hidden=3)
    with pytest.raises(RnnzooError, match="unknown model 'lstn'.*did you mean: lstm"):
        rnnzoo.create_model("lstn")
    with pytest.raises(RnnzooError, match="init must be default or chrono"):
        rnnzoo.create_model("lstm", init="magic")


def test_every_registered_entry_has_a_summary_and_typed_config():
    for registry in (MODELS, TASKS):
        for entry in registry:
            assert entry.summary, f"{registry.kind} {entry.name} has no docstring summary"
            assert entry.config is not None
