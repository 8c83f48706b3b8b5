#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that pkg/rnn's tests check against.

For each cell (rnn_tanh, rnn_relu, lstm, gru), unidirectional and
bidirectional, 2 layers, variable lengths (pack_padded_sequence), in float64:
  weights (state_dict names with the prefix "rnn."), x, lengths, h0, c0,
  R, Rh, Rc (the loss is sum(out*R) + sum(h_n*Rh) + sum(c_n*Rc)),
  out, h_n, c_n, and the gradients "grad.<name>" of every weight, x, h0, c0.
Plus "lm": embedding -> LSTM -> linear head -> cross-entropy, the model
layout of Recur's SeqToSeq token model, with its loss and gradients.

Files are safetensors written by hand (the format is a JSON header and raw
little-endian bytes), so no package beyond torch is needed.
Run: /usr/bin/python3 gen_fixtures.py   (Debian: apt-get install python3-torch)
"""
import json, struct, torch

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)


def save(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        dt = {torch.float64: "F64", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def stack_case(cell, bidir):
    T, B, I, H, L = 5, 3, 3, 4, 2
    D = 2 if bidir else 1
    cls = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    kw = {"nonlinearity": cell[4:]} if cell.startswith("rnn") else {}
    m = cls(I, H, num_layers=L, bidirectional=bidir, **kw)
    lengths = torch.tensor([5, 3, 2])
    x = torch.randn(T, B, I, requires_grad=True)
    h0 = (0.5 * torch.randn(L * D, B, H)).requires_grad_()
    c0 = (0.5 * torch.randn(L * D, B, H)).requires_grad_()
    R, Rh, Rc = torch.randn(T, B, D * H), torch.randn(L * D, B, H), torch.randn(L * D, B, H)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    if cell == "lstm":
        po, (hn, cn) = m(packed, (h0, c0))
    else:
        po, hn = m(packed, h0)
        cn = None
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(po, total_length=T)
    loss = (out * R).sum() + (hn * Rh).sum() + (cn * Rc).sum() if cn is not None else (out * R).sum() + (hn * Rh).sum()
    loss.backward()
    t = {"x": x, "lengths": lengths, "h0": h0, "R": R, "Rh": Rh, "out": out, "h_n": hn,
         "grad.x": x.grad, "grad.h0": h0.grad}
    if cn is not None:
        t.update({"c0": c0, "Rc": Rc, "c_n": cn, "grad.c0": c0.grad})
    for name, p in m.named_parameters():
        t["rnn." + name] = p
        t["grad.rnn." + name] = p.grad
    meta = {"cell": cell, "layers": str(L), "hidden": str(H), "input": str(I), "bidirectional": str(bidir).lower(),
            "T": str(T), "B": str(B), "torch": torch.__version__}
    save(f"torch_{cell}{'_bidir' if bidir else ''}.safetensors", t, meta)


def lm_case():
    V, E, H, L, T, B = 7, 5, 6, 2, 6, 2
    emb, rnn, head = torch.nn.Embedding(V, E), torch.nn.LSTM(E, H, num_layers=L), torch.nn.Linear(H, V)
    x = torch.randint(0, V, (T, B))
    y = torch.randint(0, V, (T, B))
    out, _ = rnn(emb(x))
    loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, V), y.reshape(-1), reduction="sum")
    loss.backward()
    t = {"tokens": x, "targets": y, "loss": loss.reshape(1)}
    for prefix, mod in (("embedding.", emb), ("rnn.", rnn), ("head.", head)):
        for name, p in mod.named_parameters():
            t[prefix + name] = p
            t["grad." + prefix + name] = p.grad
    save("torch_lm.safetensors", t, {"vocab": str(V), "embed": str(E), "hidden": str(H), "layers": str(L),
                                      "T": str(T), "B": str(B), "torch": torch.__version__})


for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
    for bidir in (False, True):
        stack_case(cell, bidir)
lm_case()
