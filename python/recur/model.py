"""RecurModel: Recur's network in PyTorch, with the same state_dict names.

The four shapes of pkg/rnn (Config.Shape), each as Recur computes it:

  seq2seq  embedding (or dense input) -> rnn -> head at every step
           (the char LM; forecast models are seq2vec)
  seq2vec  embedding -> rnn -> head on the top layer's final hidden state,
           both directions concatenated (forward, then reverse)
  encdec   embedding -> rnn (encoder); its final state, the two directions
           summed per layer, starts decoder.rnn over decoder.embedding of
           the decoder inputs (BOS, then the targets) -> head at every step
  vec2seq  tanh(bridge(x)), reshaped [layers, B, hidden], starts the decoder
           (LSTM cell state zero) -> head at every step

Tensors are time-major ([T, B, ...]), as PyTorch's recurrent layers.
"""

import torch
from torch import nn

_CELLS = {
    "lstm": lambda **kw: nn.LSTM(**kw),
    "gru": lambda **kw: nn.GRU(**kw),
    "rnn_tanh": lambda **kw: nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
}
SHAPES = ("seq2seq", "seq2vec", "encdec", "vec2seq")


def _stack(cfg, input_size, bidirectional, dropout=0.0):
    cell = cfg["cell"]
    if cell not in _CELLS:
        raise ValueError(f"model cell {cell!r}: want one of {', '.join(_CELLS)}")
    return _CELLS[cell](input_size=input_size, hidden_size=cfg["hidden"], num_layers=cfg["layers"],
                        bidirectional=bidirectional, dropout=dropout if cfg["layers"] > 1 else 0.0)


class _Decoder(nn.Module):
    def __init__(self, cfg, emb):
        super().__init__()
        self.embedding = nn.Embedding(cfg["outputs"], emb)
        self.rnn = _stack(cfg, emb, False, cfg.get("dropout", 0.0))


class RecurModel(nn.Module):
    """Recur's model of config, a dict as the export metadata's "model":
    shape, cell, vocab, embed, input, hidden, layers, outputs, loss,
    bidirectional, eos, bos (and optionally dropout, for training).

    forward(x, state=None, lengths=None, dec_in=None):
      x        LongTensor [T, B] of token ids (vocab > 0) or FloatTensor
               [T, B, input]; for vec2seq a FloatTensor [B, input]
      state    seq2seq only: the initial state (h, or (h, c) for LSTM)
      lengths  valid steps per sequence (seq2vec, encdec), None: all T
      dec_in   encdec, vec2seq: LongTensor [TD, B] of decoder inputs
    returns (logits [T, B, outputs], final state) for seq2seq, logits
    [B, outputs] for seq2vec, logits [TD, B, outputs] for the decoders.
    For loss "mse" the "logits" are the predicted values.
    """

    def __init__(self, config):
        super().__init__()
        cfg = dict(config)
        cfg.setdefault("layers", 1)
        cfg.setdefault("bidirectional", False)
        cfg.setdefault("input", 0)
        cfg.setdefault("loss", "cross_entropy")
        vocab = cfg.get("vocab", 0)
        if vocab > 0 and not cfg.get("embed"):
            cfg["embed"] = cfg["hidden"]
        if not cfg.get("outputs"):
            cfg["outputs"] = vocab
        if cfg.get("shape") not in SHAPES:
            raise ValueError(f"model shape {cfg.get('shape')!r}: want one of {', '.join(SHAPES)}")
        self.config = cfg
        shape, H, L = cfg["shape"], cfg["hidden"], cfg["layers"]
        self.dirs = 2 if cfg["bidirectional"] else 1
        if vocab > 0 and shape != "vec2seq":
            self.embedding = nn.Embedding(vocab, cfg["embed"])
        if shape != "vec2seq":
            self.rnn = _stack(cfg, cfg["embed"] if vocab > 0 else cfg["input"], cfg["bidirectional"], cfg.get("dropout", 0.0))
        head_in = H * self.dirs if shape in ("seq2seq", "seq2vec") else H
        if shape == "vec2seq":
            self.bridge = nn.Linear(cfg["input"], L * H)
        if shape in ("encdec", "vec2seq"):
            self.decoder = _Decoder(cfg, cfg.get("embed") or H)
        self.head = nn.Linear(head_in, cfg["outputs"])

    @property
    def is_lstm(self):
        return self.config["cell"] == "lstm"

    def _embed(self, x):
        return self.embedding(x) if hasattr(self, "embedding") else x

    def _encode(self, x, lengths, state=None):
        inp = self._embed(x)
        if lengths is None:
            return self.rnn(inp, state)
        packed = nn.utils.rnn.pack_padded_sequence(inp, torch.as_tensor(lengths, dtype=torch.int64).cpu(), enforce_sorted=False)
        out, fin = self.rnn(packed, state)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, total_length=inp.shape[0])
        return out, fin

    def decoder_init(self, x, lengths=None):
        """The decoder's initial state: the encoder's final state with the
        directions summed (encdec), or tanh(bridge(x)) (vec2seq)."""
        L, H = self.config["layers"], self.config["hidden"]
        if self.config["shape"] == "vec2seq":
            h = torch.tanh(self.bridge(x)).view(x.shape[0], L, H).transpose(0, 1).contiguous()
            return (h, torch.zeros_like(h)) if self.is_lstm else h
        _, fin = self._encode(x, lengths)
        fold = lambda s: s.view(L, self.dirs, s.shape[1], H).sum(1)
        return (fold(fin[0]), fold(fin[1])) if self.is_lstm else fold(fin)

    def decode_step(self, tokens, state):
        """One decoder step: tokens [B] -> (logits [B, outputs], state)."""
        out, state = self.decoder.rnn(self.decoder.embedding(tokens)[None], state)
        return self.head(out[0]), state

    def forward(self, x, state=None, lengths=None, dec_in=None):
        shape = self.config["shape"]
        if shape == "seq2seq":
            out, fin = self._encode(x, lengths, state)
            return self.head(out), fin
        if shape == "seq2vec":
            _, fin = self._encode(x, lengths)
            h = fin[0] if self.is_lstm else fin
            return self.head(torch.cat([h[-self.dirs + d] for d in range(self.dirs)], dim=1))
        if dec_in is None:
            raise ValueError(f"a {shape} model needs dec_in, the decoder inputs (BOS, then the targets)")
        out, _ = self.decoder.rnn(self.decoder.embedding(dec_in), self.decoder_init(x, lengths))
        return self.head(out)
