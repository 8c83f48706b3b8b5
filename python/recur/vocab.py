"""Recur's text vocabularies and their id convention.

A char vocabulary (level "char") gives id 0 to <unk>, the id of every
character it does not hold, and id i+1 to runes[i]: the distinct Unicode
code points of the training text in ascending order (U+FFFD is never one of
them). So the ids are the position in vocab.json's "runes" list plus one.
A byte vocabulary (level "byte") maps each byte of the UTF-8 text to its
value, 256 ids, no <unk>.
"""

UNK = 0


class Vocab:
    """Maps text to Recur's token ids and back."""

    def __init__(self, level="char", runes=()):
        if level not in ("char", "byte"):
            raise ValueError(f"vocabulary level {level!r}: want 'char' or 'byte'")
        self.level = level
        self.runes = [int(r) for r in runes] if level == "char" else []
        if any(b <= a for a, b in zip(self.runes, self.runes[1:])):
            raise ValueError("vocabulary runes must be ascending and distinct")
        self._ids = {chr(r): i + 1 for i, r in enumerate(self.runes)}

    @classmethod
    def from_json(cls, obj):
        """Builds the vocabulary of Recur's JSON ({"level": ..., "runes": [...]})."""
        return cls(obj.get("level", "char"), obj.get("runes") or ())

    def to_json(self):
        """The JSON object Recur writes (vocab.json, the export metadata)."""
        if self.level == "byte":
            return {"level": "byte", "ids": "id = the byte's value (0-255): text is encoded as UTF-8 bytes"}
        return {"level": "char", "runes": self.runes, "unk": UNK,
                "ids": "id 0 is <unk> (any character not in runes); id i+1 is runes[i]; runes are Unicode "
                       "code points in ascending order, those of the training text"}

    def __len__(self):
        return 256 if self.level == "byte" else len(self.runes) + 1

    def encode(self, text):
        """Returns the ids of text: one per character (char) or per UTF-8 byte (byte)."""
        if self.level == "byte":
            return list(text.encode("utf-8"))
        get = self._ids.get
        return [get(c, UNK) for c in text]

    def decode(self, ids):
        """Returns the text of ids; <unk> and ids out of range become U+FFFD."""
        if self.level == "byte":
            return bytes(int(i) for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")
        n = len(self.runes)
        return "".join(chr(self.runes[i - 1]) if 1 <= i <= n else "\ufffd" for i in map(int, ids))


def _cut(data, train_fraction):
    """The byte offset where Recur splits a corpus: train_fraction of the
    bytes, moved back to the start of the character it falls in."""
    size = len(data)
    cut = int(train_fraction * size)
    if 0 < cut < size:
        lo = max(0, cut - 3)
        for i in range(cut, lo - 1, -1):
            if data[i] & 0xC0 != 0x80:
                return i
    return cut


def read_text(path, train_fraction=None):
    """Reads a corpus as Recur does (UTF-8, no newline translation).
    With train_fraction, returns (training part, validation part)."""
    with open(path, "rb") as f:
        data = f.read()
    if train_fraction is None:
        return data.decode("utf-8")
    c = _cut(data, train_fraction)
    return data[:c].decode("utf-8"), data[c:].decode("utf-8")


def char_vocab(path, train_fraction=0.9):
    """Returns the vocabulary Recur builds for data.text=path: the distinct
    characters of its first train_fraction of bytes (data.train_fraction;
    0.9 by default). Use it to train a model in PyTorch that `recur train
    --init` can continue on the same corpus."""
    train, _ = read_text(path, train_fraction)
    return Vocab("char", sorted(r for r in set(map(ord, train)) if r != 0xFFFD and not 0xD800 <= r <= 0xDFFF))
