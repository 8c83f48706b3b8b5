"""load, save, generate, evaluate and predict."""

import json
import os
import warnings

import numpy as np
import torch

from . import safetensors
from .model import RecurModel
from .vocab import Vocab

FORMAT_VERSION = "1"
TASKS = ("charlm", "classify", "forecast", "seq2seq")


class Meta:
    """What an exported file says besides the weights.

    task     charlm, classify, forecast or seq2seq
    config   the model (RecurModel's config)
    vocab    a Vocab (charlm), else None
    job      the job config (dict), as job.json
    step     the checkpoint's step
    scaling  forecast only: {"columns", "mean", "std", "inputs", "targets", "seq", "horizon",
             and with data.residual "residual" ("last" or "ar") and, for "ar", "ar": {"order", "weights"}}
    metadata the raw safetensors metadata
    """

    def __init__(self, task, config, vocab=None, job=None, step=0, scaling=None, metadata=None):
        self.task, self.config, self.vocab, self.job = task, config, vocab, job or {}
        self.step, self.scaling, self.metadata = step, scaling, metadata or {}

    def __repr__(self):
        return f"Meta(task={self.task!r}, step={self.step}, config={self.config!r})"


def _run_file(path):
    """The exported file of a run directory, or a clear error."""
    f = os.path.join(path, "model.safetensors")
    if not os.path.exists(f):
        if os.path.exists(os.path.join(path, "job.json")):
            raise FileNotFoundError(
                f"{path} is a Recur run directory without an exported model: its checkpoints (checkpoints.db, "
                f"latest.ckpt, best.ckpt) are in Recur's own format, which Python does not read. "
                f"Run `recur export --run {path}` first (it writes {f}).")
        raise FileNotFoundError(f"{path} is neither a safetensors file nor a Recur run directory (no job.json)")
    ckpt = os.path.join(path, "latest.ckpt")
    if os.path.exists(ckpt) and os.path.getmtime(ckpt) > os.path.getmtime(f):
        warnings.warn(f"{f} is older than the run's latest checkpoint: run `recur export --run {path}` again "
                      f"for the newest weights", stacklevel=3)
    return f


def _meta_of(path, md):
    if md.get("format") != "recur":
        raise ValueError(f"{path}: no Recur metadata (__metadata__ format={md.get('format')!r}); "
                         f"write it with `recur export` or recur.save")
    v = md.get("format_version")
    if v is None:
        raise ValueError(f"{path} was exported by a Recur without format_version metadata (no vocabulary, "
                         f"no task): export it again with this version's `recur export`")
    if v != FORMAT_VERSION:
        raise ValueError(f"{path}: export format version {v}; this package reads version {FORMAT_VERSION}")
    try:
        config = json.loads(md["model"])
        vocab = Vocab.from_json(json.loads(md["vocabulary"])) if "vocabulary" in md else None
        job = json.loads(md["job"]) if "job" in md else {}
        scaling = json.loads(md["scaling"]) if "scaling" in md else None
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: metadata {e}: not readable") from None
    return Meta(md.get("task", "charlm"), config, vocab, job, int(md.get("step", 0)), scaling, md)


def load(path, dtype=torch.float32):
    """Loads an exported model: path is a file written by `recur export`
    (or recur.save) or a run directory holding one (RUN/model.safetensors,
    the export's default). Returns (model, meta): a RecurModel in eval mode
    and a Meta (meta.vocab is the Vocab of a char LM)."""
    if os.path.isdir(path):
        path = _run_file(path)
    tensors, md = safetensors.read(path)
    meta = _meta_of(path, md)
    model = RecurModel(meta.config)
    want = model.state_dict()
    for name, t in want.items():
        if name not in tensors:
            raise ValueError(f"{path}: tensor {name!r} is missing (the model needs shape {list(t.shape)})")
        if list(tensors[name].shape) != list(t.shape):
            raise ValueError(f"{path}: tensor {name!r} has shape {list(tensors[name].shape)}, the model needs {list(t.shape)}")
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise ValueError(f"{path}: unexpected tensors {', '.join(extra)}")
    model.load_state_dict({k: torch.from_numpy(np.asarray(tensors[k], dtype=np.float32)) for k in want})
    return model.to(dtype).eval(), meta


def save(path, model, meta=None, vocab=None, task=None, job=None, step=None):
    """Writes model's weights (float32, PyTorch state_dict names) and Recur's
    metadata to path, a file `recur train --init` (and recur.load) reads.
    meta, if given, supplies what is not passed: vocab, task, job, step."""
    task = task or (meta.task if meta else "charlm")
    vocab = vocab if vocab is not None else (meta.vocab if meta else None)
    job = job if job is not None else (meta.job if meta else None)
    step = step if step is not None else (meta.step if meta else 0)
    if task not in TASKS:
        raise ValueError(f"task {task!r}: want one of {', '.join(TASKS)}")
    cfg = {k: v for k, v in model.config.items() if k != "dropout"}
    md = {"format": "recur", "format_version": FORMAT_VERSION, "task": task, "step": str(step),
          "model": json.dumps(cfg, separators=(",", ":")),
          # the keys pkg/rnn writes beside the JSON
          "shape": cfg["shape"], "cell": cfg["cell"], "hidden": str(cfg["hidden"]), "layers": str(cfg["layers"]),
          "vocab": str(cfg.get("vocab", 0)), "input": str(cfg.get("input", 0)), "embed": str(cfg.get("embed", 0)),
          "outputs": str(cfg["outputs"]), "bidirectional": str(bool(cfg["bidirectional"])).lower()}
    if vocab is not None:
        md["vocabulary"] = json.dumps(vocab.to_json(), separators=(",", ":"), ensure_ascii=False)
    if job:
        md["job"] = json.dumps(job, separators=(",", ":"))
    if meta is not None and meta.scaling is not None:
        md["scaling"] = json.dumps(meta.scaling, separators=(",", ":"))
    tensors = {k: v.detach().to(torch.float32).cpu().contiguous().numpy() for k, v in model.state_dict().items()}
    safetensors.write(path, tensors, md)


def _check(model, shape, what):
    if model.config["shape"] != shape:
        raise ValueError(f"{what} needs a {shape} model; this one is {model.config['shape']}")


@torch.no_grad()
def generate(model, vocab, prompt, n=500, temperature=0.8, seed=None):
    """Continues prompt with n characters from a char LM, as `recur sample`:
    each drawn from softmax(logits / temperature); temperature <= 0 takes
    the most likely one. Returns prompt followed by the continuation."""
    _check(model, "seq2seq", "generate")
    ids = vocab.encode(prompt)
    if not ids:
        raise ValueError("generate: the prompt is empty")
    if model.config["outputs"] != model.config.get("vocab"):
        raise ValueError("generate: the model's outputs are not its input tokens")
    gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    dev = next(model.parameters()).device
    logits, state = model(torch.tensor(ids, device=dev)[:, None])
    last, out = logits[-1, 0], []
    for _ in range(n):
        if temperature <= 0:
            tok = int(last.argmax())
        else:
            p = torch.softmax(last.double() / temperature, dim=-1).cpu()
            tok = int(torch.multinomial(p, 1, generator=gen))
        out.append(tok)
        logits, state = model(torch.tensor([[tok]], device=dev), state)
        last = logits[-1, 0]
    return prompt + vocab.decode(out)


def _streams(ids, batch, seq):
    """Recur's evaluation layout (pkg/shard Streams, task.Evaluate): batch
    streams, halved until the tokens hold a window of seq+1 per stream;
    stream b reads segment [b*S, (b+1)*S), S = (N-1)//batch, in whole
    windows of seq with the state carried. Returns inputs and targets [K*seq, batch]."""
    n = len(ids)
    while batch > 1 and n < batch * (seq + 1):
        batch //= 2
    seg = (n - 1) // batch
    k = seg // seq
    if k == 0:
        raise ValueError(f"evaluate: {n} tokens are too few for one window of {seq}")
    t = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    rows = [t[b * seg: b * seg + k * seq + 1] for b in range(batch)]
    m = torch.stack(rows, dim=1)
    return m[:-1], m[1:]


@torch.no_grad()
def evaluate(model, vocab, text, batch=None, seq=None, meta=None):
    """The mean cross-entropy (nats per token) of a char LM on text, computed
    as `recur eval --text` computes it: batch streams (data.batch) of windows
    of seq (data.seq) with the state carried, the first window of each
    stream from a zero state. batch and seq default to the job's (meta)."""
    _check(model, "seq2seq", "evaluate")
    data = (meta.job.get("data") if meta else None) or {}
    batch, seq = batch or data.get("batch"), seq or data.get("seq")
    if not batch or not seq:
        raise ValueError("evaluate: pass batch and seq (or meta, whose job has data.batch and data.seq)")
    x, y = _streams(vocab.encode(text), batch, seq)
    dev = next(model.parameters()).device
    total, state, chunk = 0.0, None, seq * max(1, 4096 // seq)  # bounded memory, the state carried
    for i in range(0, x.shape[0], chunk):
        logits, state = model(x[i:i + chunk].to(dev), state)
        total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                                         y[i:i + chunk].reshape(-1).to(dev), reduction="sum"))
    return total / y.numel()


def _tensor_input(model, ex):
    if model.config.get("vocab", 0) > 0:
        return torch.as_tensor(np.asarray(ex, dtype=np.int64))[:, None]
    a = torch.as_tensor(np.asarray(ex, dtype=np.float32))
    if a.dim() == 1:
        a = a[:, None]
    return a[:, None, :]


def _residual_base(s, x):
    """The baseline a data.residual model's outputs are the error of, for
    the normalised window x [seq, inputs], in normalised units (0 without
    data.residual)."""
    res = s.get("residual", "")
    if res == "last":
        pos = [s["inputs"].index(c) for c in s["targets"]]
        return np.array([x[-1, pos[i % len(pos)]] for i in range(s["horizon"] * len(pos))])
    if res == "ar":
        p, w = s["ar"]["order"], np.asarray(s["ar"]["weights"])
        return np.append(x[-p:].reshape(-1), 1.0) @ w
    if res:
        raise ValueError(f"predict: unknown data.residual {res!r}")
    return 0.0


@torch.no_grad()
def predict(model, meta, inputs, max_len=None):
    """Applies a classify, forecast or seq2seq model, as `recur predict`:

    classify  inputs: a list of sequences (token ids, or [T, features]);
              returns [{"class": k, "probs": [...]}, ...]
    seq2seq   inputs: a list of token id sequences; returns
              [{"output": [ids...]}, ...], decoded greedily from BOS until
              EOS (not included) or max_len tokens (default 2*T+10)
    forecast  inputs: the series, [rows, columns] in its own units (at least
              data.seq rows); returns {"forecast": [...], "columns": [...]},
              the horizon after the last data.seq rows, in the series' units
    A charlm model generates text: use generate()."""
    task = meta.task
    model.eval()
    dev = next(model.parameters()).device
    if task == "charlm":
        raise ValueError("predict: a charlm model generates text; use recur.generate")
    if task == "forecast":
        s = meta.scaling
        a = np.asarray(inputs, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != len(s["mean"]):
            raise ValueError(f"predict: the series has shape {a.shape}; the model was trained on {len(s['mean'])} columns")
        if a.shape[0] < s["seq"]:
            raise ValueError(f"predict: {a.shape[0]} rows; the model reads windows of {s['seq']}")
        x = (a[-s["seq"]:] - np.asarray(s["mean"])) / np.asarray(s["std"])
        x = x[:, s.get("inputs", list(range(a.shape[1])))]
        out = model(torch.as_tensor(x, dtype=torch.float32, device=dev)[:, None, :])[0].double().cpu().numpy()
        out = out + _residual_base(s, x.astype(np.float32).astype(np.float64))
        cols = s["targets"]
        return {"forecast": [float(v * s["std"][cols[i % len(cols)]] + s["mean"][cols[i % len(cols)]]) for i, v in enumerate(out)],
                "columns": cols}
    res = []
    for ex in inputs:
        x = _tensor_input(model, ex).to(dev)
        if task == "classify":
            p = torch.softmax(model(x)[0].double(), dim=-1).cpu()
            res.append({"class": int(p.argmax()), "probs": [float(v) for v in p]})
        elif task == "seq2seq":
            res.append({"output": _greedy(model, x, max_len or 2 * x.shape[0] + 10)})
        else:
            raise ValueError(f"predict: task {task!r} unknown")
    return res


def _greedy(model, x, max_len):
    cfg = model.config
    state = model.decoder_init(x)
    tok = torch.tensor([cfg["bos"]], device=x.device)
    out = []
    for _ in range(max_len):
        logits, state = model.decode_step(tok, state)
        tok = logits.argmax(dim=-1)
        if int(tok) == cfg["eos"]:
            break
        out.append(int(tok))
    return out


def mean_loss(logits, targets, loss="cross_entropy"):
    """Recur's mean loss: cross-entropy summed over the targets and divided
    by their count, or the squared error summed over the values and divided
    by their count (no factor 1/2)."""
    if loss == "mse":
        return float(((logits.double() - targets.double()) ** 2).sum()) / targets.numel()
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), targets.reshape(-1), reduction="sum")) / targets.numel()

