# Runs the models Go wrote (cases.json in DIR: file, inputs, Go's outputs)
# through recur.load's RecurModel and writes the largest difference of each.
# Usage: shapes.py DIR OUT.json
import json
import os
import sys

import torch

import recur

d = sys.argv[1]
with open(os.path.join(d, "cases.json")) as f:
    cases = json.load(f)
res = {}
for c in cases:
    model, meta = recur.load(os.path.join(d, c["file"]))
    model = model.double()
    T, B = c["T"], c["B"]
    if c.get("tokens"):
        x = torch.tensor(c["tokens"], dtype=torch.int64).view(T, B)
    elif model.config["shape"] == "vec2seq":
        x = torch.tensor(c["x"], dtype=torch.float64).view(B, -1)
    else:
        x = torch.tensor(c["x"], dtype=torch.float64).view(T, B, -1)
    dec_in = torch.tensor(c["dec_in"], dtype=torch.int64).view(c["TD"], B) if c.get("dec_in") else None
    with torch.no_grad():
        out = model(x, lengths=c.get("lengths"), dec_in=dec_in)
    if isinstance(out, tuple):
        out = out[0]
    got = out.reshape(-1)
    want = torch.tensor(c["want"], dtype=torch.float64)
    res[c["file"]] = float((got - want).abs().max()) if got.shape == want.shape else f"shape {list(got.shape)} != {list(want.shape)}"
with open(sys.argv[2], "w") as f:
    json.dump(res, f)
