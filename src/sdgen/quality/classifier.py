"""The text classifiers sdgen measures and screens with. The label classifier: TF-IDF over words and word pairs, then
logistic regression (balanced classes); cheap to fit on a few hundred rows, and the same model everywhere, so that
`sdgen eval`, `sdgen tune` and the label check read text alike. The character classifier reads the surface of a text
(spelling, punctuation, casing): the tune panel's second reader, and what tells real rows from generated ones."""

from __future__ import annotations


def text_classifier(seed: int):
    """An unfitted scikit-learn pipeline (``fit(texts, labels)``, ``predict_proba``, ``classes_``)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, strip_accents="unicode"),
        LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced", random_state=seed),
    )


def character_classifier(seed: int, c: float = 1.0):
    """An unfitted classifier of character 2-5-grams (within words), balanced classes."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    characters = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    return make_pipeline(characters, LogisticRegression(max_iter=2000, C=c, class_weight="balanced", random_state=seed))
