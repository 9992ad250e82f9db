"""Text preprocessing: regex tokens, stop words, Porter stems, spaCy lemmas and TF-IDF from scratch.

A document becomes a list of tokens (`tokenize`), optionally filtered (`remove_stop_words`) and
normalised (`stem`, `lemmatize`); `TfidfVectorizer` turns token lists into the weighted
bag-of-words matrix a linear classifier learns from, reproducing scikit-learn's numbers:

    tf-idf(t, d) = tf(t, d) * idf(t),   idf(t) = ln((1 + n) / (1 + df(t))) + 1   (smooth_idf)

followed by dividing each row by its L2 norm.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

# Letters/digits, with one inner apostrophe kept ("don't", "it's").
TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# HTML line breaks in scraped reviews: "<br />", "<br/>", "<br>".
BR_RE = re.compile(r"<\s*br\s*/?\s*>")


def tokenize(text: str) -> list[str]:
    """Lower-case `text`, drop `<br />` tags, return the regex tokens `[a-z0-9]+('[a-z]+)?`.

    "Great<br />taste, don't miss!" -> ["great", "taste", "don't", "miss"].
    """
    return TOKEN_RE.findall(BR_RE.sub(" ", text.lower()))


def remove_stop_words(tokens: Sequence[str], stop_words: Iterable[str]) -> list[str]:
    """The tokens not in `stop_words`, order kept (`stop_words` is any iterable of strings)."""
    stop = frozenset(stop_words)
    return [t for t in tokens if t not in stop]


def stem(tokens: Sequence[str], stemmer=None) -> list[str]:
    """Porter stem of each token ("running" -> "run", "studies" -> "studi").

    `stemmer` is anything with a `.stem(word) -> str` method; default NLTK's `PorterStemmer()`.
    """
    if stemmer is None:
        from nltk.stem import PorterStemmer

        stemmer = PorterStemmer()
    return [stemmer.stem(t) for t in tokens]


def lemmatize(texts: Sequence[str], nlp, batch_size: int = 64) -> list[list[str]]:
    """Lower-cased spaCy lemmas of each text, one list per text ("is" -> "be", "mice" -> "mouse").

    `nlp` is a loaded spaCy pipeline; texts go through `nlp.pipe` in batches with the parser and
    NER disabled (lemmas need only the tagger). Punctuation and whitespace tokens are dropped.
    """
    docs = nlp.pipe(texts, batch_size=batch_size, disable=["parser", "ner"])
    return [
        [tok.lemma_.lower() for tok in doc if not (tok.is_punct or tok.is_space)] for doc in docs
    ]


def build_vocabulary(token_lists: Sequence[Sequence[str]]) -> dict[str, int]:
    """Term -> column index, terms sorted alphabetically (scikit-learn's column order)."""
    terms = sorted({t for tokens in token_lists for t in tokens})
    return {t: i for i, t in enumerate(terms)}


def count_matrix(token_lists: Sequence[Sequence[str]], vocabulary: dict[str, int]) -> sp.csr_matrix:
    """Sparse (n_docs, n_terms) raw term counts; tokens not in `vocabulary` are ignored."""
    rows = [i for i, tokens in enumerate(token_lists) for t in tokens if t in vocabulary]
    cols = [vocabulary[t] for tokens in token_lists for t in tokens if t in vocabulary]
    data = np.ones(len(cols), dtype=np.float64)
    # Duplicate (row, col) pairs are summed: that is the count.
    counts = sp.csr_matrix((data, (rows, cols)), shape=(len(token_lists), len(vocabulary)))
    counts.sum_duplicates()
    return counts


def inverse_document_frequency(counts: sp.spmatrix, smooth: bool = True) -> np.ndarray:
    """idf per term, shape (n_terms,): ln((1+n)/(1+df)) + 1 if `smooth`, else ln(n/df) + 1."""
    n = counts.shape[0]
    df = np.bincount(sp.csr_matrix(counts).indices, minlength=counts.shape[1]).astype(float)
    if smooth:
        n, df = n + 1, df + 1
    return np.log(n / df) + 1.0


def l2_normalize_rows(X: sp.spmatrix) -> sp.csr_matrix:
    """Each row divided by its Euclidean norm; all-zero rows stay zero."""
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ X)


class TfidfVectorizer(TransformerMixin, BaseEstimator):
    """TF-IDF on tokenised text, numerically equal to scikit-learn's `TfidfVectorizer`.

    tokenizer: str -> list[str] (default `tokenize`); smooth_idf, sublinear_tf (tf -> 1 + ln tf)
    and norm ("l2" or None) mean what they mean in scikit-learn; `sparse=False` returns a dense
    ndarray. Fitted: `vocabulary_` (term -> column, sorted terms), `idf_` (n_terms,).
    """

    # scikit-learn estimator checks that do not apply (tests/catalog/test_sklearn_conformance.py):
    # they feed 2-D numeric arrays, and a vectoriser takes a list of documents (strings).
    _expected_failed_checks = dict.fromkeys(
        (
            "check_fit_score_takes_y",
            "check_estimators_overwrite_params",
            "check_dont_overwrite_parameters",
            "check_estimators_fit_returns_self",
            "check_readonly_memmap_input",
            "check_n_features_in_after_fitting",
            "check_positive_only_tag_during_fit",
            "check_estimators_dtypes",
            "check_complex_data",
            "check_dtype_object",
            "check_estimators_empty_data_messages",
            "check_pipeline_consistency",
            "check_estimators_nan_inf",
            "check_estimator_sparse_tag",
            "check_estimator_sparse_array",
            "check_estimator_sparse_matrix",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_transformer_data_not_an_array",
            "check_transformer_general",
            "check_transformer_preserve_dtypes",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_fit2d_1sample",
            "check_fit2d_1feature",
            "check_dict_unchanged",
            "check_fit_idempotent",
            "check_fit_check_is_fitted",
            "check_n_features_in",
            "check_fit1d",
            "check_fit2d_predict1d",
        ),
        "feeds a 2-D numeric array; a vectoriser takes a list of documents (str)",
    )

    def __init__(
        self,
        tokenizer: Callable[[str], list[str]] | None = None,
        smooth_idf: bool = True,
        sublinear_tf: bool = False,
        norm: str | None = "l2",
        sparse: bool = True,
    ):
        self.tokenizer = tokenizer
        self.smooth_idf = smooth_idf
        self.sublinear_tf = sublinear_tf
        self.norm = norm
        self.sparse = sparse

    def _tokens(self, docs: Iterable[str]) -> list[list[str]]:
        """Each document tokenised with `tokenizer` (or `tokenize`); a bare string is refused."""
        if isinstance(docs, str):
            raise TypeError("expected an iterable of documents, got a single string")
        tok = self.tokenizer or tokenize
        return [list(tok(d)) for d in docs]

    def fit(self, docs: Iterable[str], y=None) -> TfidfVectorizer:
        """Learn `vocabulary_` and `idf_` from the documents; returns self."""
        tokens = self._tokens(docs)
        self.vocabulary_ = build_vocabulary(tokens)
        if not self.vocabulary_:
            raise ValueError("empty vocabulary: the documents contain no tokens")
        self.idf_ = inverse_document_frequency(
            count_matrix(tokens, self.vocabulary_), self.smooth_idf
        )
        return self

    def transform(self, docs: Iterable[str]):
        """(n_docs, n_terms) TF-IDF matrix: csr_matrix, or ndarray when `sparse=False`."""
        check_is_fitted(self, "idf_")
        X = count_matrix(self._tokens(docs), self.vocabulary_)
        if self.sublinear_tf:
            X.data = 1.0 + np.log(X.data)
        X = sp.csr_matrix(X @ sp.diags(self.idf_))
        if self.norm == "l2":
            X = l2_normalize_rows(X)
        elif self.norm is not None:
            raise ValueError(f"norm must be 'l2' or None, got {self.norm!r}")
        return X if self.sparse else X.toarray()

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The terms in column order."""
        check_is_fitted(self, "vocabulary_")
        return np.array(sorted(self.vocabulary_, key=self.vocabulary_.get), dtype=object)
