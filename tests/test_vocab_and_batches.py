"""The vocabulary (round trips, compact ids, unseen characters named), the split, and stateful
stream batching."""

import importlib
import unicodedata

import pytest
import torch
from conftest import shakespeare
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from charrnn.errors import ConfigError, VocabError
from charrnn.text import data
from charrnn.text.vocab import UNKNOWN_POLICIES, CharVocab, apply_unknown


@pytest.mark.parametrize(
    "s",
    [
        "hello, world\n",
        "Привет, мир",
        "人工智能与字符级模型",
        "emoji 🙂🚀 and e\u0301",
        "tab\there",
    ],
)
def test_decode_encode_round_trip(s):
    vocab = CharVocab.from_text(s)
    assert vocab.decode(vocab.encode(s)) == s
    assert vocab.decode(data.encode(s, vocab).tolist()) == s


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_round_trip_any_unicode(s):
    vocab = CharVocab.from_text(s)
    assert vocab.decode(vocab.encode(s)) == s
    assert data.encode(s, vocab).tolist() == vocab.encode(s)


def test_an_id_outside_the_vocabulary_is_named_not_read_as_another_character():
    vocab = CharVocab.from_text("abc")
    assert vocab.decode([0, 2]) == vocab.decode(torch.tensor([0, 2])) == "ac"
    for ids in ([3], [-1], [1.0], [True], ["a"]):  # -1 would read as the last: c
        with pytest.raises(VocabError, match=r"is not an id of this vocabulary \(0 to 2\)"):
            vocab.decode(ids)
    with pytest.raises(VocabError, match="made from a str, not NoneType"):
        CharVocab.from_text(None)


def test_vocab_is_sorted_code_points_and_round_trips_as_a_list():
    vocab = CharVocab.from_text("banana🙂A")
    assert vocab.chars == ["A", "a", "b", "n", "🙂"]
    assert CharVocab.from_list(vocab.to_list()) == vocab


def test_unseen_characters_are_named_with_their_code_points_and_positions():
    """Every layer that meets characters the vocabulary lacks names each, its code point and where
    it is (1-based), as the commands write it; --unknown skip or replace takes them out instead.
    (The sampler's prime: test_sampling.py; score's lines: test_scoring.py; the table of bad
    input: test_cli.py.)"""
    vocab = CharVocab.from_text("abc")
    with pytest.raises(
        VocabError, match=r"'é' \(U\+00E9\) at character 3; 'z' \(U\+007A\) at character 4"
    ):
        vocab.encode("abéz")
    with pytest.raises(VocabError, match=r"'é' \(U\+00E9\) at character 3$"):
        data.encode("abé", vocab)
    vocab = CharVocab.from_text("abcde \"'-.")
    with pytest.raises(
        VocabError, match=r"'é' \(U\+00E9\) at characters 2, 5; 'z' \(U\+007A\) at character 4"
    ):
        apply_unknown("aébzé", vocab)
    assert apply_unknown("aébzé", vocab, "skip") == "ab"
    assert apply_unknown("café “déjà” — ok…", vocab, "replace") == 'ca e "de a" -   ...'
    # where the vocabulary has one case only, the other case reads as it: a lowercase model's Z
    lower, upper = CharVocab.from_text("abcez "), CharVocab.from_text("ABCEZ ")
    assert apply_unknown("Zebra É", lower, "replace") == "zeb a e"
    assert apply_unknown("zebra é", upper, "replace") == "ZEB A E"
    # é typed as one code point to a model that read e + U+0301 (and the other way): the same
    # text, read in the model's Unicode form whatever the policy (skip kept the e, not the é)
    for typed, known in (("NFC", "NFD"), ("NFD", "NFC")):
        vocab = CharVocab.from_text(unicodedata.normalize(known, "été naïve"))
        text = unicodedata.normalize(typed, "été")
        for policy in UNKNOWN_POLICIES:
            assert apply_unknown(text, vocab, policy) == unicodedata.normalize(known, "été")
        with pytest.raises(VocabError, match=r"never seen: 'z' \(U\+007A\) at character (\d); "):
            apply_unknown(text + "z", vocab)  # the accents not named: the same characters
        with pytest.raises(VocabError, match=f"at character {len(text) + 1}; "):
            apply_unknown(text + "z", vocab)  # counted in the text as typed
        # a --stop string too is matched in the form the model writes
        stops = importlib.import_module("charrnn.cli.sample")._as_written([text], vocab)
        assert stops == [unicodedata.normalize(known, "été")]


@pytest.mark.parametrize(
    ("size", "dtype"),
    [(65, torch.uint8), (256, torch.uint8), (257, torch.int16), (40_000, torch.int32)],
)
def test_smallest_dtype(size, dtype):
    assert data.id_dtype(size) == dtype
    text = "".join(chr(0x4E00 + i) for i in range(size))
    ids = data.encode(text, CharVocab.from_text(text))
    assert ids.dtype == dtype and ids[-1].item() == size - 1


def test_split_is_contiguous_and_matches_nanogpt_on_shakespeare():
    text = shakespeare()
    vocab = CharVocab.from_text(text)
    train, val = data.split(data.encode(text, vocab), 0.1)
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert vocab.decode(val[:20].tolist()) == text[1_003_854 : 1_003_854 + 20]


def test_split_rejects_bad_fractions():
    with pytest.raises(ConfigError):
        data.split(torch.arange(10), 1.0)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(2, 5000), batch=st.integers(1, 40), seq=st.integers(1, 64))
@example(n=1000, batch=4, seq=10)
def test_batch_targets_are_inputs_shifted_and_each_batch_continues_every_stream(n, batch, seq):
    ids = torch.arange(n)
    L = (n - 1) // batch  # each stream's length (too short a text: see the next test)
    assume(seq <= L)
    b = data.StreamBatcher(ids, batch, seq)
    assert len(b) == L // seq
    prev = None
    for k in range(len(b)):
        x, y = b[k]
        assert x.shape == y.shape == (batch, seq) and x.dtype == torch.int64
        assert torch.equal(y, x + 1)  # targets are the inputs shifted by one
        # row r of batch k is characters [k*T, (k+1)*T) of stream r
        assert torch.equal(x[:, 0], torch.arange(batch) * L + k * seq)
        if prev is not None:
            assert torch.equal(x[:, 0], prev[:, -1] + 1)  # continues each stream
        prev = x


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 3000), batch=st.integers(1, 17), seq=st.integers(1, 40))
def test_eval_chunks_cover_every_target_once_in_stream_order(n, batch, seq):
    ids = torch.arange(n)
    if (n - 1) // batch < seq:
        with pytest.raises(ConfigError):
            data.StreamBatcher(ids, batch, seq)
        return
    b = data.StreamBatcher(ids, batch, seq)
    targets = []
    rows = [[] for _ in range(batch)]
    for x, y, tail in b.eval_chunks():
        assert torch.equal(y, x + 1)
        if tail:
            rows[-1] += y[0].tolist()  # the tail continues the last stream
        else:
            for r in range(batch):
                rows[r] += y[r].tolist()
    for r in rows:
        targets += r
        assert r == list(range(r[0], r[0] + len(r)))  # each stream is contiguous
    assert targets == list(range(1, n))  # every target exactly once, in text order
    # read in as few calls as a T of EVAL_MIN_COLS allows, however short T is
    calls = sum(1 for _ in b.eval_chunks())
    assert calls <= -(-b.stream_len // max(seq, data.EVAL_MIN_COLS)) + 1


def test_check_fits_says_how_small_and_what_to_change():
    with pytest.raises(ConfigError, match=r"has 100 characters.*32 streams x 128.*--batch-size"):
        data.check_fits(100, 32, 128, "validation", "use a smaller --batch-size")
