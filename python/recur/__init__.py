"""recur: models trained by Recur, in PyTorch.

    import recur
    model, meta = recur.load("runs/recur/model.safetensors")   # or the run directory
    print(recur.generate(model, meta.vocab, "The ", 200, temperature=0.8))

Token ids of a char LM: id 0 is <unk>; id i+1 is the i-th character of
meta.vocab.runes (code points, ascending). See recur.vocab.

Depends on torch and numpy only; use it with PYTHONPATH=python.
"""

from .api import FORMAT_VERSION, Meta, evaluate, generate, load, mean_loss, predict, save
from .model import RecurModel
from .safetensors import FormatError, read as read_safetensors, write as write_safetensors
from .vocab import UNK, Vocab, char_vocab, read_text

__all__ = ["FORMAT_VERSION", "Meta", "RecurModel", "Vocab", "UNK", "FormatError", "char_vocab", "evaluate",
           "generate", "load", "mean_loss", "predict", "read_safetensors", "read_text", "save", "write_safetensors"]
