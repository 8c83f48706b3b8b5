# Applies an exported classify, forecast or seq2seq model to an input file
# with recur.predict. Usage: predict.py MODEL INPUT OUT.json
# (forecast: a CSV with a header line; the others: JSONL with "input").
import json
import sys

import numpy as np

import recur

model, meta = recur.load(sys.argv[1])
if meta.task == "forecast":
    res = recur.predict(model, meta, np.loadtxt(sys.argv[2], delimiter=",", skiprows=1, ndmin=2))
else:
    with open(sys.argv[2]) as f:
        res = recur.predict(model, meta, [json.loads(line)["input"] for line in f if line.strip()])
with open(sys.argv[3], "w") as f:
    json.dump({"task": meta.task, "result": res}, f)
