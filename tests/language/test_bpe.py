"""Focused tests of the byte-level BPE tokenizers: the known answer, the tie rule, overlapping
runs, the round trip on any Unicode text, the file format across twins, errors, verify."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compare import get, run_concept
from compare.language.bpe import MIXED, UNSEEN, ReferenceBPE, extra_plots
from compare.verify import verify
from numpy_impl.language import bpe as npb
from torch_impl.language import bpe as thb

TWINS = [pytest.param(npb, id="numpy"), pytest.param(thb, id="torch")]


def _ids(values):
    return np.asarray(values).tolist()


@pytest.mark.parametrize("twin", TWINS)
def test_the_classic_aaabdaaabac_with_three_merges(twin):
    # aa -> Z (256); then ab and Za tie at 2: the smaller pair (97, 98) wins -> Y (257);
    # then ZY -> X (258): "XdXac", as in the textbook example
    tokenizer = twin.BPETokenizer().train("aaabdaaabac", 259)
    assert _ids(tokenizer.merges) == [[97, 97], [97, 98], [256, 257]]
    assert _ids(tokenizer.encode("aaabdaaabac")) == [258, 100, 258, 97, 99]
    assert tokenizer.vocab[258] == b"aaab"
    assert tokenizer.decode(tokenizer.encode("aaabdaaabac")) == "aaabdaaabac"


@pytest.mark.parametrize("twin", TWINS)
def test_ties_go_to_the_smallest_pair_not_the_first_seen(twin):
    # every pair occurs once; "zz" comes first in the text, but (97, 98) = "ab" is smallest
    assert _ids(twin.BPETokenizer().train("zzab", 257).merges) == [[97, 98]]
    # a larger count beats a smaller pair ("zzz" holds two overlapping "zz")
    assert _ids(twin.BPETokenizer().train("ab zzz", 257).merges) == [[122, 122]]


@pytest.mark.parametrize("twin", TWINS)
def test_overlapping_runs_merge_left_to_right(twin):
    tokenizer = twin.BPETokenizer().train("aaaa", 257)          # one merge: (a, a) -> 256
    assert _ids(tokenizer.encode("aaa")) == [256, 97]
    assert _ids(tokenizer.encode("aaaaa")) == [256, 256, 97]
    assert _ids(tokenizer.encode("baaab")) == [98, 256, 97, 98]
    merged = twin.merge(twin.text_to_bytes("aaaaaaa"), (97, 97), 300)
    assert _ids(merged) == [300, 300, 300, 97]


@pytest.mark.parametrize("twin", TWINS)
def test_training_stops_when_no_pair_is_left(twin):
    assert len(twin.BPETokenizer().train("", 300).merges) == 0
    assert len(twin.BPETokenizer().train("x", 300).merges) == 0
    tokenizer = twin.BPETokenizer().train("abab", 300)            # ab, then (ab)(ab)
    assert _ids(tokenizer.merges) == [[97, 98], [256, 256]]
    assert tokenizer.vocab_size == 258


TEXTS = ["", "a", "👋🏽", "🧑🏽‍🚀🏳️‍🌈", "e\u0301", "\x00\n\t", UNSEEN, MIXED, "日本語の文章",
         "aaaaaaaaa", "\ud7ff\ue000\U0010ffff"]


@pytest.mark.parametrize("twin", TWINS)
def test_round_trip_on_unicode_text(twin):
    tokenizer = twin.BPETokenizer().train(MIXED * 3, 256 + 60)
    for text in TEXTS:
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text
        assert len(ids) <= len(text.encode("utf-8"))
    # merges do compress the text they were learned from
    assert len(tokenizer.encode(MIXED)) < 0.7 * len(MIXED.encode("utf-8"))


_trained = {name: twin.BPETokenizer().train(MIXED * 2 + "aaaa bbbb", 256 + 50)
            for name, twin in (("numpy", npb), ("torch", thb))}


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_round_trip_and_equal_ids_on_any_text(text):
    numpy_ids = _trained["numpy"].encode(text)
    torch_ids = _trained["torch"].encode(text)
    assert _ids(numpy_ids) == _ids(torch_ids)
    assert _trained["numpy"].decode(numpy_ids) == text
    assert _trained["torch"].decode(torch_ids) == text


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet="ab😀é", max_size=30), st.integers(0, 12))
def test_both_twins_learn_the_reference_merges(train, n_merges):
    reference = ReferenceBPE().train(train, 256 + n_merges)
    for twin in (npb, thb):
        tokenizer = twin.BPETokenizer().train(train, 256 + n_merges)
        assert [tuple(m) for m in _ids(tokenizer.merges)] == reference.merges
        assert _ids(tokenizer.encode(train + "ab")) == reference.encode(train + "ab")


@pytest.mark.parametrize("twin", TWINS)
def test_a_cut_inside_a_character_decodes_to_the_replacement_character(twin):
    tokenizer = twin.BPETokenizer()                               # no merges: ids are bytes
    ids = tokenizer.encode("é!")                                  # é is 2 bytes: c3 a9
    assert _ids(ids) == [0xC3, 0xA9, 0x21]
    assert tokenizer.decode(ids[:1]) == "\ufffd"
    assert tokenizer.decode_bytes(ids[:1]) == b"\xc3"


def test_file_format_and_loading_across_twins(tmp_path):
    numpy_tok = npb.BPETokenizer().train("aaabdaaabac", 259)
    path = numpy_tok.save(tmp_path / "tok.bpe")
    assert path.read_text() == "dualgrad-bpe v1\n3\n97 97\n97 98\n256 257\n"
    torch_tok = thb.BPETokenizer().load(path)                     # NumPy's file into torch
    assert _ids(torch_tok.merges) == _ids(numpy_tok.merges)
    assert _ids(torch_tok.encode("aaabdaaabac")) == [258, 100, 258, 97, 99]
    torch_tok.save(tmp_path / "back.bpe")                         # and back, byte for byte
    assert (tmp_path / "back.bpe").read_text() == path.read_text()
    empty = npb.BPETokenizer().save(tmp_path / "empty.bpe")
    assert _ids(thb.BPETokenizer().load(empty).merges) == []


def test_state_dict_moves_the_merges_between_twins():
    numpy_tok = npb.BPETokenizer().train(MIXED, 280)
    torch_tok = thb.BPETokenizer()
    torch_tok.load_state_dict(numpy_tok.state_dict())
    assert list(torch_tok.state_dict()) == list(numpy_tok.state_dict()) == ["merges"]
    back = npb.BPETokenizer()
    back.load_state_dict(torch_tok.state_dict())                  # torch tensors accepted
    assert _ids(back.encode(UNSEEN)) == _ids(torch_tok.encode(UNSEEN)) \
        == _ids(numpy_tok.encode(UNSEEN))


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("content, message", [
    ("minbpe v1\n0\n", "not a BPE file"),
    ("dualgrad-bpe v1\n2\n97 97\n", "announces 2 merges"),
    ("dualgrad-bpe v1\n1\n97\n", "each must be"),
    ("dualgrad-bpe v1\n1\n97 x\n", "pair of integers"),
    ("dualgrad-bpe v1\n2\n97 97\n256 257\n", "merge 1 uses token(s) [256, 257]"),
])
def test_bad_files_are_refused_with_the_reason(twin, tmp_path, content, message):
    path = tmp_path / "bad.bpe"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        twin.BPETokenizer().load(path)


@pytest.mark.parametrize("twin", TWINS)
def test_bad_arguments(twin):
    with pytest.raises(ValueError, match="vocab_size must be at least 256"):
        twin.BPETokenizer().train("abc", 100)
    with pytest.raises(TypeError, match="expected text as str"):
        twin.BPETokenizer().encode(b"bytes")
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 256\)"):
        twin.BPETokenizer().decode([300])


@pytest.mark.parametrize("twin", TWINS)
def test_a_plain_class_whose_state_dict_is_a_copy_of_the_merges(twin):
    tokenizer = twin.BPETokenizer()
    assert tokenizer.train("aaabdaaabac", 259) is tokenizer        # train returns self
    assert not any(hasattr(tokenizer, name) for name in ("forward", "backward", "eval"))
    assert repr(tokenizer) == "BPETokenizer(vocab_size=259)"
    state = tokenizer.state_dict()
    assert list(state) == ["merges"] and _ids(state["merges"]) == _ids(tokenizer.merges)
    state["merges"][0, 0] = 0                                      # a copy, not the merges
    assert _ids(tokenizer.merges)[0] == [97, 97]
    with pytest.raises(RuntimeError, match="merges"):
        tokenizer.load_state_dict({})
    with pytest.raises(ValueError, match=re.escape("merge 0 uses token(s) [256, 97]")):
        tokenizer.load_state_dict({"merges": np.array([[256, 97]])})
    assert len(tokenizer.merges) == 3                              # a refused state changes nothing
    tokenizer.load_state_dict({"merges": np.zeros((0, 2), dtype=np.int64)})
    assert tokenizer.vocab_size == 256 and _ids(tokenizer.encode("aa")) == [97, 97]


def test_verify_accepts_a_copy_and_catches_a_first_seen_tie_rule():
    class MyBPE(npb.BPETokenizer):
        pass

    assert verify("bpe", MyBPE).passed

    class FirstSeenTies(npb.BPETokenizer):
        """minbpe's rule: among equal counts, the pair seen first in the text."""

        def train(self, text, vocab_size, verbose=False):
            ids = list(text.encode("utf-8"))
            merges = []
            for k in range(vocab_size - 256):
                if len(ids) < 2:
                    break
                counts = {}
                for pair in zip(ids, ids[1:], strict=False):
                    counts[pair] = counts.get(pair, 0) + 1
                pair = max(counts, key=counts.get)
                ids = list(npb.merge(np.array(ids), pair, 256 + k))
                merges.append(pair)
            self.load_state_dict({"merges": np.array(merges, dtype=np.int64).reshape(-1, 2)})
            return self

    report = verify("bpe", FirstSeenTies)
    assert not report.passed
    failing = {(d.case, d.name) for d in report.failures}
    assert ("aaabdaaabac", "merges") in failing


def test_compression_plot_is_written(tmp_path):
    [path] = extra_plots(tmp_path, seed=0)
    assert path.name == "bpe_compression.png" and path.stat().st_size > 10_000


def test_every_case_agrees_exactly():
    report = run_concept(get("bpe"), dtypes=("float64",))
    assert report.passed
    assert all(d.exact for d in report.diffs)
