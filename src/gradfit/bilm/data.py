"""Corpus data for the biLM: text -> tokens -> word types and their character ids -> fixed-length windows.

The path through this module::

    sentences = read_corpus("corpus.txt")                  # one sentence (list of tokens) per non-empty line
    corpus = build_corpus(sentences, vocab_size=5000)      # types, chars, to_vocab, stream
    w = windows(corpus.stream, length=20)                  # (n_windows, 22) type ids
    train, valid = split(w, validation=0.1, seed=0)

**Word types.** Every distinct token is a *type*. Ids 0..3 are the specials `<pad>`, `<s>`, `</s>`, `<unk>`
(`PAD`, `BOS`, `EOS`, `UNK`); the corpus's words follow, most frequent first, ties broken by the word itself
(Python string order). The model reads its *input* through characters, so every type keeps its own id and
character row, however rare. Only its *output* (softmax) vocabulary is cut: the first `vocab_size` types,
specials included, predict themselves and every other type is predicted as `<unk>` (`Corpus.to_vocab`).

**Character ids** (`N_CHARS` = 261 symbols): 0 padding, 1 begin-of-word, 2 end-of-word, 3 the begin-of-sentence
marker, 4 the end-of-sentence marker, and 5 + b for each byte b of the word's UTF-8 encoding. A word's row
is `[1, 5 + b_1, ..., 5 + b_k, 2, 0, ...]`, its bytes cut after `max_chars - 2` (which may split a multi-byte
character: the ids are per byte). The specials' rows: `<pad>` all 0; `<s>` `[1, 3, 2]`; `</s>` `[1, 4, 2]`;
`<unk>` `[1, 2]`, the row of the empty word, which no real token has (empty tokens are refused).

**Stream and windows.** `Corpus.stream` is the corpus as type ids, each sentence as `<s> w1 ... wn </s>`,
sentences concatenated. `windows` cuts it into rows of `length + 2` ids: a left context id, `length` inputs
and a right context id, so that with `w = windows(...)` the model uses inputs `w[:, 1:-1]`, forward targets
`to_vocab[w[:, 2:]]` (the next token) and backward targets `to_vocab[w[:, :-2]]` (the previous token),
and masks targets equal to `PAD` (the padding of the last window).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from numbers import Real
from pathlib import Path

import numpy as np

from gradfit.errors import DataError, SpecError

__all__ = [
    "BOS",
    "BOS_CHAR",
    "BOW",
    "BYTE_OFFSET",
    "CHAR_PAD",
    "EOS",
    "EOS_CHAR",
    "EOW",
    "N_CHARS",
    "PAD",
    "SPECIALS",
    "UNK",
    "Corpus",
    "build_corpus",
    "encode",
    "read_corpus",
    "split",
    "tokenize",
    "windows",
]

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = 0, 1, 2, 3

CHAR_PAD, BOW, EOW, BOS_CHAR, EOS_CHAR = 0, 1, 2, 3, 4
BYTE_OFFSET = 5  # character id of UTF-8 byte b is BYTE_OFFSET + b
N_CHARS = BYTE_OFFSET + 256  # 261

# A token is either a word: a run of letters, digits or underscores, possibly joined by single inner
# apostrophes (' or ’) or hyphens ("prov'd", "o'er", "fiend-like"); or a dash run ("--"); or an ellipsis
# run (".."); or any other single character that is not white space (each punctuation mark on its own).
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*|-{2,}|\.{2,}|[^\w\s]")

# tokens that cannot be words: the empty string, and the specials that mark padding and sentence boundaries
# (a literal "<unk>", as in text that was already reduced to a vocabulary, is taken as the <unk> type)
_RESERVED = frozenset({"", "<pad>", "<s>", "</s>"})


def tokenize(line: str) -> list[str]:
    """Split one line into word and punctuation tokens, keeping case.

    A token is a run of word characters (letters, digits, `_`) in which single apostrophes (' or ’) and
    hyphens may join parts ("prov'd", "o'er", "fiend-like"), a run of two or more `-` or `.`, or any
    other single non-space character. For example `"'Tis now struck twelve. Get thee to bed--"` gives
    `["'", "Tis", "now", "struck", "twelve", ".", "Get", "thee", "to", "bed", "--"]`.
    """
    return _TOKEN.findall(line)


def read_corpus(path: str | os.PathLike[str]) -> list[list[str]]:
    """Read a UTF-8 text file as sentences: one per line that is not blank, each a list of tokens.

    Lines are split as `str.splitlines` splits them; a leading byte-order mark is dropped. Raises
    `DataError` (one line naming the file) when the file is missing or unreadable, not UTF-8, or has no text.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"corpus file {p} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"corpus file {p} is a directory, not a text file") from None
    except OSError as e:
        raise DataError(f"cannot read corpus file {p}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"corpus file {p} is not UTF-8 text (invalid byte at offset {e.start}); convert it to UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")
    sentences = [tokenize(line) for line in text.splitlines() if line and not line.isspace()]
    if not sentences:
        raise DataError(f"corpus file {p} has no text: it needs at least one non-blank line")
    return sentences


@dataclass(frozen=True, eq=False)
class Corpus:
    """A tokenised corpus as arrays (all read-only).

    Attributes:
        types: every distinct word type: `SPECIALS` first, then the corpus's words by frequency (descending),
            ties by the word.
        chars: int32 `(n_types, max_chars)`: each type's character ids (see the module docstring).
        to_vocab: int32 `(n_types,)`: each type's output-vocabulary id: types `0..vocab_size-1` map to
            themselves, all others to `UNK`.
        vocab_size: size of the output vocabulary, the requested size capped at the number of types.
        stream: int32: the whole corpus as type ids, each sentence as `<s> w1 ... wn </s>`, concatenated.
    """

    types: tuple[str, ...]
    chars: np.ndarray
    to_vocab: np.ndarray
    vocab_size: int
    stream: np.ndarray

    @property
    def max_chars(self) -> int:
        """The width of a character row."""
        return int(self.chars.shape[1])


def build_corpus(sentences: Iterable[Sequence[str]], vocab_size: int, max_chars: int = 50) -> Corpus:
    """Types, character ids, output vocabulary and the id stream of tokenised sentences.

    `sentences` is an iterable of token lists (as `read_corpus` returns). `vocab_size` counts the four
    specials; a size above the number of types is capped to it. `max_chars` (at least 3) is the width of a
    character row: begin-of-word, up to `max_chars - 2` bytes, end-of-word. Raises `DataError` when there
    are no sentences, a sentence is a string rather than a list of tokens, or a token is empty, not a
    string, or one of `<pad>`, `<s>`, `</s>`; a literal `<unk>` token becomes the `<unk>` type.
    """
    vocab_size = _check_int("vocab_size", vocab_size, len(SPECIALS))
    max_chars = _check_int("max_chars", max_chars, 3)
    sentences = _as_sentences(sentences)
    if not sentences:
        raise DataError("the corpus has no sentences")
    counts = Counter(chain.from_iterable(sentences))
    _check_tokens(counts)
    counts.pop(SPECIALS[UNK], None)
    types = SPECIALS + tuple(sorted(counts, key=lambda w: (-counts[w], w)))
    index = {w: i for i, w in enumerate(types)}
    lengths = np.fromiter(map(len, sentences), np.int64, count=len(sentences))
    ids = np.fromiter(map(index.__getitem__, chain.from_iterable(sentences)), np.int32, count=int(lengths.sum()))
    vocab_size = min(vocab_size, len(types))
    to_vocab = np.arange(len(types), dtype=np.int32)
    to_vocab[vocab_size:] = UNK
    return Corpus(
        types=types,
        chars=_read_only(_type_chars(types, max_chars)),
        to_vocab=_read_only(to_vocab),
        vocab_size=vocab_size,
        stream=_read_only(_frame(ids, lengths)),
    )


def windows(stream: np.ndarray, length: int, stride: int | None = None) -> np.ndarray:
    """Cut an id stream into rows of `length + 2` consecutive ids, padding the last row with `PAD`.

    Row k is `stream[k * stride : k * stride + length + 2]`: a left context id, `length` input ids, a right
    context id. `stride` defaults to `length`: consecutive rows then overlap by two ids, and the inputs
    `w[:, 1:-1]` read row after row are the stream from its second id on, then `PAD`. So every id from the
    third on is a forward target (`w[:, 2:]`) exactly once, and every id whose successor is an input a
    backward target (`w[:, :-2]`) exactly once. There are as many rows as it takes for the last one to reach
    the end of the stream (at least one); a smaller stride repeats targets, a larger one skips them.
    Returns int32 `(n_windows, length + 2)`.
    """
    stream = np.asarray(stream)
    if stream.ndim != 1 or not np.issubdtype(stream.dtype, np.integer):
        raise DataError(f"the stream must be a 1-D array of integer ids, got {stream.dtype} of shape {stream.shape}")
    if stream.size == 0:
        raise DataError("the stream is empty: there is nothing to cut into windows")
    length = _check_int("length", length, 1)
    stride = length if stride is None else _check_int("stride", stride, 1)
    width = length + 2
    n = 1 if stream.size <= width else -(-(stream.size - width) // stride) + 1
    padded = np.full((n - 1) * stride + width, PAD, dtype=np.int32)
    padded[: stream.size] = stream
    return np.lib.stride_tricks.sliding_window_view(padded, width)[::stride].copy()


def split(windows_array: np.ndarray, validation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle whole windows (rows) with `seed` and return `(train, validation)`.

    The validation part has `round(validation * n_windows)` rows, taken from the front of a seeded
    permutation; the training part has the rest, both in permuted order. Raises `DataError` when either part
    would be empty and `SpecError` when `validation` is not a number between 0 and 1.
    """
    arr = np.asarray(windows_array)
    if arr.ndim == 0:
        raise DataError("the windows must be an array with one window per row")
    if isinstance(validation, bool) or not isinstance(validation, Real) or not 0.0 <= float(validation) <= 1.0:
        raise SpecError(f"validation must be a fraction between 0 and 1, got {validation!r}")
    n = arr.shape[0]
    n_valid = int(np.floor(n * float(validation) + 0.5))
    if n_valid == 0 or n_valid == n:
        part = "validation" if n_valid == 0 else "training"
        raise DataError(
            f"splitting {n} windows with validation={validation} leaves the {part} part empty; "
            "use a longer corpus, shorter windows or another validation fraction"
        )
    order = np.random.default_rng(seed).permutation(n)
    return arr[order[n_valid:]], arr[order[:n_valid]]


def encode(corpus: Corpus, sentences: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Character ids of new tokenised sentences, laid out like `Corpus.stream`, for embedding them.

    Returns `(chars, offsets)`:

    - `chars`: int32 `(n_rows, corpus.max_chars)`, one row per token of `<s> w1 ... wn </s>` for each
      sentence in turn (so `n_rows` = number of words + 2 x number of sentences). A word's row is computed
      from its own UTF-8 bytes exactly as `Corpus.chars` is, whether or not the word is among
      `corpus.types` (a word that is gets the same row as its type); `<s>`, `</s>` and a literal `<unk>` get
      the specials' rows. Encoding the sentences the corpus was built from gives `corpus.chars[corpus.stream]`.
    - `offsets`: int64 `(n_sentences + 1,)`: sentence i is `chars[offsets[i]:offsets[i + 1]]`, its `<s>` at
      `offsets[i]`, its `</s>` at `offsets[i + 1] - 1` and its words between them.

    Raises `DataError` for the same malformed tokens as `build_corpus`; no sentences give `(0, max_chars)`
    chars and `offsets == [0]`.
    """
    sentences = _as_sentences(sentences)
    lengths = np.fromiter(map(len, sentences), np.int64, count=len(sentences))
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(lengths + 2, out=offsets[1:])
    if not sentences:
        return np.zeros((0, corpus.max_chars), dtype=np.int32), offsets
    distinct = dict.fromkeys(chain.from_iterable(sentences))
    _check_tokens(distinct)
    distinct.pop(SPECIALS[UNK], None)
    local_types = SPECIALS + tuple(distinct)
    index = {w: i for i, w in enumerate(local_types)}
    ids = np.fromiter(map(index.__getitem__, chain.from_iterable(sentences)), np.int32, count=int(lengths.sum()))
    return _type_chars(local_types, corpus.max_chars)[_frame(ids, lengths)], offsets


def _type_chars(types: Sequence[str], max_chars: int) -> np.ndarray:
    """Character rows of `SPECIALS + words` (the words distinct, none of them special), vectorised over bytes."""
    out = np.zeros((len(types), max_chars), dtype=np.int32)
    out[BOS, :3] = (BOW, BOS_CHAR, EOW)
    out[EOS, :3] = (BOW, EOS_CHAR, EOW)
    out[UNK, :2] = (BOW, EOW)
    words = types[len(SPECIALS) :]
    if not words:
        return out
    encoded = [w.encode("utf-8") for w in words]
    lengths = np.fromiter(map(len, encoded), np.int64, count=len(encoded))
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    rows = np.repeat(np.arange(len(SPECIALS), len(types)), lengths)
    pos = np.arange(data.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    keep = pos < max_chars - 2
    out[rows[keep], pos[keep] + 1] = data[keep].astype(np.int32) + BYTE_OFFSET
    out[len(SPECIALS) :, 0] = BOW
    out[np.arange(len(SPECIALS), len(types)), np.minimum(lengths, max_chars - 2) + 1] = EOW
    return out


def _frame(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The flat ids of sentences of `lengths` tokens, each framed as `BOS ids EOS`."""
    ends = np.cumsum(lengths + 2)
    starts = ends - lengths - 2
    out = np.empty(int(ends[-1]), dtype=np.int32)
    is_word = np.ones(out.size, dtype=bool)
    is_word[starts] = False
    is_word[ends - 1] = False
    out[starts] = BOS
    out[ends - 1] = EOS
    out[is_word] = ids
    return out


def _as_sentences(sentences: Iterable[Sequence[str]]) -> list[Sequence[str]]:
    out = []
    for i, s in enumerate(sentences):
        if isinstance(s, str):
            raise DataError(f"sentence {i} is a string, not a list of tokens; split it with tokenize() first")
        out.append(s if isinstance(s, list | tuple) else list(s))
    return out


def _check_tokens(distinct: Iterable[object]) -> None:
    """Refuse tokens that are not strings, are empty, or are reserved specials (checked once per distinct token)."""
    for w in distinct:
        if not isinstance(w, str):
            raise DataError(f"token {w!r} is a {type(w).__name__}, not a string")
        if w in _RESERVED:
            what = "an empty token" if w == "" else f"the reserved token {w!r}"
            raise DataError(
                f"the sentences contain {what}; <pad>, <s> and </s> mark padding and sentence boundaries and "
                "cannot be words"
            )


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise SpecError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a
