"""gradfit.bilm.data against hand-made inputs and independent index arithmetic, and the shipped corpus."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gradfit.bilm.data import (
    BOS,
    EOS,
    N_CHARS,
    PAD,
    SPECIALS,
    UNK,
    Corpus,
    build_corpus,
    encode,
    read_corpus,
    split,
    tokenize,
    windows,
)
from gradfit.errors import DataError, SpecError

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = ROOT / "examples" / "bilm"


# ---------------------------------------------------------------- tokenize


@pytest.mark.parametrize(
    ("line", "tokens"),
    [
        (
            "'Tis now struck twelve. Get thee to bed, Francisco.",
            ["'", "Tis", "now", "struck", "twelve", ".", "Get", "thee", "to", "bed", ",", "Francisco", "."],
        ),
        ("Who's there? Prov'd most royally!", ["Who's", "there", "?", "Prov'd", "most", "royally", "!"]),
        ("his fiend-like queen,--", ["his", "fiend-like", "queen", ",", "--"]),
        ("wait... what?!", ["wait", "...", "what", "?", "!"]),
        ("[Exit Ghost.]", ["[", "Exit", "Ghost", ".", "]"]),
        ("Café “naïve” o’er 1603", ["Café", "“", "naïve", "”", "o’er", "1603"]),
        ("  spaced \t out  ", ["spaced", "out"]),
        ("mistress' thrall - a - b", ["mistress", "'", "thrall", "-", "a", "-", "b"]),
        ("", []),
    ],
)
def test_tokenize_examples(line, tokens):
    assert tokenize(line) == tokens


# ---------------------------------------------------------------- build_corpus: types, stream, to_vocab

SENTENCES = [["b", "a", "b"], ["c", "a", "b"]]  # b x3, a x2, c x1


def test_types_are_specials_then_by_frequency_then_by_word():
    corpus = build_corpus(SENTENCES, vocab_size=100)
    assert SPECIALS == ("<pad>", "<s>", "</s>", "<unk>")
    assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
    assert corpus.types == SPECIALS + ("b", "a", "c")
    # ties by the word, in Python string order (upper case before lower case)
    tied = build_corpus([["zeta", "alpha", "Beta"], ["alpha", "zeta", "Beta"]], vocab_size=100)
    assert tied.types[4:] == ("Beta", "alpha", "zeta")


def test_stream_frames_each_sentence():
    corpus = build_corpus(SENTENCES, vocab_size=100)
    b, a, c = 4, 5, 6
    assert corpus.stream.tolist() == [BOS, b, a, b, EOS, BOS, c, a, b, EOS]
    assert corpus.stream.dtype == np.int32
    assert [corpus.types[i] for i in corpus.stream] == ["<s>", "b", "a", "b", "</s>", "<s>", "c", "a", "b", "</s>"]


def test_empty_sentence_is_just_its_boundaries():
    corpus = build_corpus([["x"], [], ["x"]], vocab_size=10)
    assert corpus.stream.tolist() == [BOS, 4, EOS, BOS, EOS, BOS, 4, EOS]


def test_to_vocab_maps_rare_types_to_unk():
    corpus = build_corpus(SENTENCES, vocab_size=6)  # the specials, "b" and "a"
    assert corpus.vocab_size == 6
    assert corpus.to_vocab.tolist() == [0, 1, 2, 3, 4, 5, UNK]
    assert corpus.to_vocab.dtype == np.int32
    # a vocabulary larger than the types is capped at them: every type predicts itself
    big = build_corpus(SENTENCES, vocab_size=1000)
    assert big.vocab_size == len(big.types) == 7
    assert big.to_vocab.tolist() == list(range(7))
    # only the specials: every word is <unk>
    assert build_corpus(SENTENCES, vocab_size=4).to_vocab.tolist() == [0, 1, 2, 3, UNK, UNK, UNK]


def test_literal_unk_token_is_the_unk_type():
    corpus = build_corpus([["a", "<unk>", "a"], ["<unk>"]], vocab_size=10)
    assert corpus.types == SPECIALS + ("a",)
    assert corpus.stream.tolist() == [BOS, 4, UNK, 4, EOS, BOS, UNK, EOS]


def test_arrays_are_read_only():
    corpus = build_corpus(SENTENCES, vocab_size=10)
    for array in (corpus.chars, corpus.to_vocab, corpus.stream):
        with pytest.raises(ValueError):
            array[0] = 1


@pytest.mark.parametrize(
    ("sentences", "pattern"),
    [
        ([], "no sentences"),
        (["a line of text"], "sentence 0 is a string"),
        ([["a", ""]], "empty token"),
        ([["a", "<s>"]], "reserved token '<s>'"),
        ([["</s>"]], "reserved token '</s>'"),
        ([["<pad>"]], "reserved token '<pad>'"),
        ([["a", 3]], "not a string"),
    ],
)
def test_build_corpus_refuses_bad_sentences(sentences, pattern):
    with pytest.raises(DataError, match=pattern):
        build_corpus(sentences, vocab_size=10)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"vocab_size": 3}, "vocab_size"), ({"vocab_size": 10.0}, "vocab_size"), ({"vocab_size": True}, "vocab_size"),
     ({"vocab_size": 10, "max_chars": 2}, "max_chars")],
)  # fmt: skip
def test_build_corpus_refuses_bad_options(kwargs, pattern):
    with pytest.raises(SpecError, match=pattern):
        build_corpus(SENTENCES, **kwargs)


# ---------------------------------------------------------------- character ids


def _row(ids: list[int], max_chars: int) -> list[int]:
    return ids + [0] * (max_chars - len(ids))


def test_char_ids_of_known_words():
    corpus = build_corpus([["Hamlet", "café", "Hamlet"]], vocab_size=10, max_chars=12)
    assert N_CHARS == 261
    assert corpus.chars.shape == (len(corpus.types), 12)
    assert corpus.chars.dtype == np.int32
    assert corpus.max_chars == 12
    chars = dict(zip(corpus.types, corpus.chars.tolist(), strict=True))
    # H a m l e t = 72 97 109 108 101 116, each + 5, between begin-of-word 1 and end-of-word 2
    assert chars["Hamlet"] == _row([1, 77, 102, 114, 113, 106, 121, 2], 12)
    # é is two UTF-8 bytes, 0xC3 0xA9 = 195 169
    assert chars["café"] == _row([1, 104, 102, 107, 200, 174, 2], 12)
    # the specials
    assert chars["<pad>"] == [0] * 12
    assert chars["<s>"] == _row([1, 3, 2], 12)
    assert chars["</s>"] == _row([1, 4, 2], 12)
    assert chars["<unk>"] == _row([1, 2], 12)
    assert corpus.chars.max() < N_CHARS


def test_char_ids_truncate_bytes_at_max_chars():
    corpus = build_corpus([["abcdef", "éé", "ab"]], vocab_size=10, max_chars=5)
    chars = dict(zip(corpus.types, corpus.chars.tolist(), strict=True))
    assert chars["abcdef"] == [1, 102, 103, 104, 2]  # a b c kept (max_chars - 2 = 3 bytes)
    assert chars["éé"] == [1, 200, 174, 200, 2]  # per byte: the second é is cut in half
    assert chars["ab"] == [1, 102, 103, 2, 0]
    # the independent rule: BOW, UTF-8 bytes + 5 cut at max_chars - 2, EOW, zeros
    for word, row in chars.items():
        if word not in SPECIALS:
            body = [b + 5 for b in word.encode("utf-8")][:3]
            assert row == _row([1, *body, 2], 5)


# ---------------------------------------------------------------- windows


def test_windows_slice_the_stream_with_two_ids_of_overlap():
    stream = np.arange(1, 12)  # 11 ids, length 3: rows of 5 starting at 0, 3, 6
    w = windows(stream, length=3)
    assert w.dtype == np.int32
    assert w.tolist() == [[1, 2, 3, 4, 5], [4, 5, 6, 7, 8], [7, 8, 9, 10, 11]]
    # one more id: a fourth row, padded
    assert windows(np.arange(1, 13), length=3)[-1].tolist() == [10, 11, 12, PAD, PAD]
    # a stream shorter than a window: one padded row
    assert windows(np.array([BOS, 7, EOS]), length=4).tolist() == [[BOS, 7, EOS, PAD, PAD, PAD]]
    # an explicit stride
    assert windows(np.arange(1, 8), length=3, stride=1).tolist() == [[1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7]]


@pytest.mark.parametrize("size", range(10, 20))
def test_windows_reassemble_the_stream(size):
    stream = np.arange(1, size + 1)
    w = windows(stream, length=4)
    # left context of the first row, then every row's inputs, then the last row's right context
    rebuilt = np.concatenate([w[0, :1], w[:, 1:-1].ravel(), w[-1, -1:]])
    assert rebuilt[:size].tolist() == stream.tolist()
    assert (rebuilt[size:] == PAD).all()
    # consecutive rows overlap by two ids
    assert (w[1:, :2] == w[:-1, -2:]).all()
    # every id from the third on is a forward target exactly once
    forward = w[:, 2:].ravel()
    assert sorted(forward[forward != PAD].tolist()) == stream[2:].tolist()


def test_window_targets_are_the_neighbouring_tokens_in_vocabulary_ids():
    sentences = [["the", "cat", "sat"], ["the", "dog", "ran", "off"], ["a", "cat", "!"], ["the", "end"]]
    corpus = build_corpus(sentences, vocab_size=6)  # "the" and "cat" in the vocabulary, the rest UNK
    length = 4
    w = windows(corpus.stream, length=length)
    inputs = w[:, 1:-1]
    forward = corpus.to_vocab[w[:, 2:]]
    backward = corpus.to_vocab[w[:, :-2]]
    stream = corpus.stream
    n = stream.size
    for r in range(w.shape[0]):
        for t in range(length):
            i = r * length + 1 + t  # position of input (r, t) in the stream
            assert inputs[r, t] == (stream[i] if i < n else PAD)
            assert forward[r, t] == (corpus.to_vocab[stream[i + 1]] if i + 1 < n else PAD)
            assert backward[r, t] == (corpus.to_vocab[stream[i - 1]] if i - 1 < n else PAD)
    assert UNK in forward and corpus.types.index("the") in forward
    # the last row's padding is masked out: its targets past the end are PAD
    last = w[-1]
    assert last[-1] == PAD and (last[np.flatnonzero(last == PAD)[0] :] == PAD).all()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((np.array([], dtype=np.int32), 3), DataError),
        ((np.zeros((2, 2), dtype=np.int32), 3), DataError),
        ((np.array([1.0, 2.0]), 3), DataError),
        ((np.arange(5), 0), SpecError),
        ((np.arange(5), 3, 0), SpecError),
    ],
)
def test_windows_refuses_bad_input(args, error):
    with pytest.raises(error):
        windows(*args)


# ---------------------------------------------------------------- split


def test_split_is_disjoint_covering_and_seeded():
    w = np.repeat(np.arange(50, dtype=np.int32)[:, None], 5, axis=1)  # row i is all i
    train, valid = split(w, validation=0.2, seed=7)
    assert train.shape == (40, 5) and valid.shape == (10, 5)
    assert (train == train[:, :1]).all() and (valid == valid[:, :1]).all()  # whole rows
    ids_train, ids_valid = set(train[:, 0].tolist()), set(valid[:, 0].tolist())
    assert not ids_train & ids_valid
    assert ids_train | ids_valid == set(range(50))
    again_train, again_valid = split(w, validation=0.2, seed=7)
    assert (again_train == train).all() and (again_valid == valid).all()
    other_train, _ = split(w, validation=0.2, seed=8)
    assert other_train[:, 0].tolist() != train[:, 0].tolist()
    assert valid[:, 0].tolist() != list(range(10))  # shuffled, not the first rows


@pytest.mark.parametrize(("n", "validation"), [(1, 0.5), (10, 0.01), (10, 0.0), (10, 0.99), (10, 1.0)])
def test_split_refuses_an_empty_part(n, validation):
    with pytest.raises(DataError, match="empty"):
        split(np.zeros((n, 4), dtype=np.int32), validation=validation, seed=0)


@pytest.mark.parametrize("validation", [-0.1, 1.5, "0.1", None])
def test_split_refuses_a_bad_fraction(validation):
    with pytest.raises(SpecError, match="validation"):
        split(np.zeros((10, 4), dtype=np.int32), validation=validation, seed=0)


# ---------------------------------------------------------------- read_corpus


def test_read_corpus_one_sentence_per_non_blank_line(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes("\ufeffTo be, or not to be:\r\n\r\n   \n  that is the question.\nCafé!".encode())
    assert read_corpus(path) == [
        ["To", "be", ",", "or", "not", "to", "be", ":"],
        ["that", "is", "the", "question", "."],
        ["Café", "!"],
    ]
    assert read_corpus(str(path)) == read_corpus(path)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [(None, "does not exist"), (b"", "no text"), (b"\n  \n\t\n", "no text"), (b"fine\n\xff\xfe bad\n", "not UTF-8")],
)
def test_read_corpus_errors_name_the_file(tmp_path, content, pattern):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=pattern) as info:
        read_corpus(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_read_corpus_refuses_a_directory(tmp_path):
    with pytest.raises(DataError, match="directory") as info:
        read_corpus(tmp_path)
    assert str(tmp_path) in str(info.value)


# ---------------------------------------------------------------- encode


def test_encode_new_text_like_the_stream():
    corpus = build_corpus(SENTENCES, vocab_size=10, max_chars=8)
    chars, offsets = encode(corpus, [["a", "zz"], [], ["<unk>", "b"]])
    assert chars.dtype == np.int32 and offsets.dtype == np.int64
    assert offsets.tolist() == [0, 4, 6, 10]
    assert chars.shape == (10, 8)
    rows = chars.tolist()
    known = dict(zip(corpus.types, corpus.chars.tolist(), strict=True))
    assert rows[0] == rows[4] == rows[6] == known["<s>"]
    assert rows[3] == rows[5] == rows[9] == known["</s>"]
    assert rows[1] == known["a"]  # a corpus type: its own row
    assert rows[2] == _row([1, 127, 127, 2], 8)  # "zz" is not a type: computed from its bytes (z = 122)
    assert rows[7] == known["<unk>"]
    assert rows[8] == known["b"]


def test_encode_the_training_sentences_gives_the_stream_rows():
    sentences = [["Thou", "art", "more", "lovely"], ["and", "more", "temperate", ":"]]
    corpus = build_corpus(sentences, vocab_size=5, max_chars=6)
    chars, offsets = encode(corpus, sentences)
    assert (chars == corpus.chars[corpus.stream]).all()
    assert offsets.tolist() == [0, 6, 12]


def test_encode_nothing_and_bad_tokens():
    corpus = build_corpus(SENTENCES, vocab_size=10, max_chars=8)
    chars, offsets = encode(corpus, [])
    assert chars.shape == (0, 8) and offsets.tolist() == [0]
    with pytest.raises(DataError, match="reserved"):
        encode(corpus, [["a", "<pad>"]])
    with pytest.raises(DataError, match="string"):
        encode(corpus, ["a b"])


# ---------------------------------------------------------------- the shipped corpus


def test_shipped_corpus_builds_and_matches_its_description():
    sentences = read_corpus(CORPUS_DIR / "corpus.txt")
    corpus = build_corpus(sentences, vocab_size=5000)
    assert isinstance(corpus, Corpus)
    n_tokens = sum(map(len, sentences))
    assert (len(sentences), n_tokens, len(corpus.types)) == (14_988, 118_587, 10_483)
    assert corpus.stream.size == n_tokens + 2 * len(sentences)
    assert corpus.vocab_size == 5000
    words = corpus.stream[(corpus.stream != BOS) & (corpus.stream != EOS)]
    unk_rate = float(np.mean(corpus.to_vocab[words] == UNK))
    assert 0.01 < unk_rate < 0.10
    described = (CORPUS_DIR / "CORPUS.md").read_text(encoding="utf-8")
    assert f"UNK rate at vocab_size 5000: {100 * unk_rate:.2f} %" in described
    for number in ("14,988 sentences", f"{n_tokens:,} word and punctuation tokens", "10,483 types"):
        assert number in described
    assert 200_000 <= (CORPUS_DIR / "corpus.txt").stat().st_size <= 600_000
    # every line is a sentence: nothing blank, no surrounding white space
    lines = (CORPUS_DIR / "corpus.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and all(line and line == line.strip() for line in lines[:-1])
    assert re.search(r"shakespeare.* 0\.6", described)
    # the windows the demo trains on
    w = windows(corpus.stream, length=20)
    assert w.shape == (-(-(corpus.stream.size - 22) // 20) + 1, 22)
    train, valid = split(w, validation=0.1, seed=0)
    assert train.shape[0] + valid.shape[0] == w.shape[0]
