# Trains a char LM a few steps in PyTorch on a corpus, with the vocabulary
# Recur builds for it, and saves it for `recur train --init`. It writes the
# loss of the saved weights on Recur's first training batch (window 0 of
# each of BATCH streams over the training part, zero state) and on a text
# file as `recur eval --text` computes it.
# Usage: pytorch_init.py CORPUS HELD OUT.safetensors HIDDEN LAYERS EMBED BATCH SEQ OUT.json
import json
import sys

import torch

import recur

corpus, held, out = sys.argv[1:4]
hidden, layers, embed, B, T = map(int, sys.argv[4:9])
res = sys.argv[9]
torch.manual_seed(0)
vocab = recur.char_vocab(corpus, 0.9)
model = recur.RecurModel({"shape": "seq2seq", "cell": "lstm", "vocab": len(vocab), "embed": embed,
                          "hidden": hidden, "layers": layers})
train, _ = recur.read_text(corpus, 0.9)
ids = torch.tensor(vocab.encode(train))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for step in range(5):
    starts = torch.randint(0, len(ids) - T - 1, (B,))
    x = torch.stack([ids[s:s + T] for s in starts], dim=1)
    y = torch.stack([ids[s + 1:s + T + 1] for s in starts], dim=1)
    logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
recur.save(out, model, vocab=vocab, task="charlm")

seg = (len(ids) - 1) // B
x = torch.stack([ids[b * seg:b * seg + T] for b in range(B)], dim=1)
y = torch.stack([ids[b * seg + 1:b * seg + T + 1] for b in range(B)], dim=1)
with torch.no_grad():
    logits, _ = model(x)
first = recur.mean_loss(logits, y)
with open(res, "w") as f:
    json.dump({"first_batch_loss": first, "eval_loss": recur.evaluate(model, vocab, recur.read_text(held), batch=B, seq=T),
               "trained_loss": float(loss)}, f)
