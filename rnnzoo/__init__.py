"""rnnzoo: a PyTorch zoo of sequence models, from Hopfield (1982) to BERT (2019).

Public API:
    create_model(name, **overrides)   a registered model, e.g. create_model("lstm", input_size=16)
    list_models(pattern="*")          registered model names matching a wildcard
    load_checkpoint(path)             (network ready for inference, its run config)
    load_pretrained(path)             (rnnzoo bert, its BertConfig) from a Hugging Face BERT folder
"""

__version__ = "0.1.0"

from .api import create_model, list_models, load_checkpoint  # noqa: E402
from .models.hf_bert import load_pretrained  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "load_checkpoint", "load_pretrained"]
