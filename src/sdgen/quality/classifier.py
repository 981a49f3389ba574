"""The one text classifier sdgen measures and screens with: TF-IDF over words and word pairs, then logistic
regression (balanced classes). Cheap to fit on a few hundred rows, and the same model everywhere, so that
`sdgen eval`, `sdgen tune` and the label check read text alike."""

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
