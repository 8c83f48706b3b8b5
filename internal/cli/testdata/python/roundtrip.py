# Loads an exported char LM and evaluates it on a text file as `recur eval
# --text` does. Usage: roundtrip.py MODEL_OR_RUN_DIR TEXT OUT.json
import json
import sys

import recur

model, meta = recur.load(sys.argv[1])
text = recur.read_text(sys.argv[2])
loss = recur.evaluate(model, meta.vocab, text, meta=meta)
sample = recur.generate(model, meta.vocab, "to be", 40, temperature=0.8, seed=1)
greedy = recur.generate(model, meta.vocab, "to be", 10, temperature=0)
with open(sys.argv[3], "w") as f:
    json.dump({"loss": loss, "sample": sample, "greedy": greedy, "task": meta.task, "step": meta.step,
               "vocab_size": len(meta.vocab), "ids_of_to": meta.vocab.encode("to")}, f)
