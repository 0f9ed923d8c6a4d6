"""The names corpus: deterministic, makemore's vocabulary, a seeded 80/10/10 split, and a
loader for a user's file that fails with one clear sentence."""
import numpy as np
import pytest

from compare.data import names


def test_builtin_corpus_is_deterministic_distinct_and_name_like():
    words = names.builtin_words()
    assert len(words) == 4000 and len(set(words)) == 4000
    assert words == names.builtin_words()  # same seed, same words
    assert words[:3] == ["semem", "neangrol", "zuthhothrea"]  # pinned: Mersenne Twister stream
    assert names.builtin_words(seed=1)[:50] != words[:50]
    assert all(w.isascii() and w.isalpha() and w.islower() and 2 <= len(w) <= 12 for w in words)
    assert 5.5 < np.mean([len(w) for w in words]) < 7.5
    words.append("mutated")  # a fresh list each call: the cache is not shared
    assert len(names.builtin_words()) == 4000


def test_vocabulary_is_makemores_27_symbols():
    vocab = names.build_vocab(names.builtin_words())
    assert vocab.size == 27
    assert vocab.stoi["."] == 0 and vocab.stoi["a"] == 1 and vocab.stoi["z"] == 26
    assert vocab.itos[0] == "." and vocab.itos[26] == "z"
    assert vocab.encode("emma") == [5, 13, 13, 1]
    assert vocab.decode([5, 13, 13, 1]) == "emma"
    with pytest.raises(ValueError, match="'é' of 'émile' is not in the vocabulary"):
        vocab.encode("émile")
    with pytest.raises(ValueError, match="boundary token"):
        names.build_vocab(["a.b"])


def test_split_is_80_10_10_disjoint_and_seeded():
    words = names.builtin_words()
    train, dev, test = names.split_words(words)
    assert (len(train), len(dev), len(test)) == (3200, 400, 400)
    assert sorted(train + dev + test) == sorted(words)
    assert not set(train) & set(dev) and not set(dev) & set(test)
    assert names.split_words(words) == (train, dev, test)
    assert names.split_words(words, seed=1)[0] != train
    assert words == names.builtin_words()  # the input is not shuffled in place
    with pytest.raises(ValueError, match="cuts"):
        names.split_words(words, cuts=(0.9, 0.8))


def test_bigram_pairs_of_joined_words():
    vocab = names.build_vocab(["emma", "ava"])  # . a e m v -> 0 1 2 3 4
    xs, ys = names.bigram_pairs(["emma", "ava"], vocab)
    pairs = [vocab.itos[int(x)] + vocab.itos[int(y)] for x, y in zip(xs, ys, strict=True)]
    assert pairs == [".e", "em", "mm", "ma", "a.", ".a", "av", "va", "a."]
    assert xs.dtype == np.int64


def test_load_words_one_a_line_or_prose(tmp_path):
    lines = tmp_path / "names.txt"
    lines.write_text("\ufeffemma\nolivia\n\n  ava \n", encoding="utf-8")
    assert names.load_words(lines) == ["emma", "olivia", "ava"]
    prose = tmp_path / "prose.txt"
    prose.write_text("Zoë met Łukasz. They left.\n", encoding="utf-8")
    assert names.load_words(prose) == ["Zoë", "met", "Łukasz", "They", "left"]
    assert names.get_words(prose) == names.load_words(prose)
    assert names.get_words() == names.builtin_words()


def test_load_words_errors_are_one_clear_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file: '.*missing.txt'"):
        names.load_words(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="is not a file"):
        names.load_words(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n ...\n")
    with pytest.raises(ValueError, match="contains no words"):
        names.load_words(empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("abc zoë".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text: byte 0xeb at offset 6"):
        names.load_words(latin1)
