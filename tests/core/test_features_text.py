"""core.features, free text: word + character TF-IDF for dense models, and stacking for trees
(``TextStack``) with out-of-fold scores on the training rows, so the trees never see a leak."""

import io

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from core.features import CharPieces, TextStack, TextVectors, dense_preprocessor, tree_preprocessor
from core.importance import permutation_importances
from core.types import ColumnInfo


def col(name, role, n_unique=3):
    return ColumnInfo(name=name, role=role, reason="", dtype="", n_unique=n_unique, n_missing=0)


def random_reviews(n, seed, planted=None):
    """Eight random words per row from 400; ``planted``: a word every 'yes' row also holds."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}x" for i in range(400)]
    y = rng.choice(["no", "yes"], n)
    docs = [" ".join(rng.choice(vocab, 8)) + (f" {planted}" if planted and label == "yes" else "")
            for label in y]
    return pd.DataFrame({"t": docs, "n": rng.normal(size=n)}), y


def stacked(frame, y, task="binary", seed=0):
    prep, _ = tree_preprocessor((col("n", "numeric"), col("t", "text", 300)), task, seed)
    out = prep.fit_transform(frame, y)
    return prep, out, prep.named_steps["encode"].named_transformers_["text_t"]


def test_out_of_fold_scores_do_not_leak_the_target():
    # Random words, random labels: nothing to learn. Out of fold, the text score must be noise; the
    # same final model scoring its own training rows has memorised them. That the pipeline's output
    # is the former also proves the ColumnTransformer fits the part with fit_transform(X, y).
    frame, y = random_reviews(300, seed=0)
    prep, out, stack = stacked(frame, y)
    oof = out["text_t__t_text_score"].to_numpy()
    in_sample = np.asarray(stack.transform(frame["t"]))[:, 0]
    assert roc_auc_score(y == "yes", oof) < 0.65
    assert roc_auc_score(y == "yes", in_sample) > 0.85
    # New rows are scored by the final model, fitted on every training row.
    assert np.allclose(np.asarray(prep.transform(frame))[:, 1], in_sample)


def test_a_planted_word_separates_the_classes_out_of_fold():
    frame, y = random_reviews(300, seed=1, planted="refund")
    _, out, stack = stacked(frame, y)
    assert roc_auc_score(y == "yes", out["text_t__t_text_score"]) > 0.95
    assert stack.regularisation_ in (0.1, 0.3, 1.0, 3.0, 10.0)


def test_fit_then_transform_is_in_sample_but_fit_transform_is_not():
    frame, y = random_reviews(200, seed=2)
    stack = TextStack("binary", components=0, seed=0)
    oof = stack.fit_transform(frame["t"], y)
    refit = TextStack("binary", components=0, seed=0).fit(frame["t"], y)
    assert np.allclose(refit.transform(frame["t"]), stack.transform(frame["t"]))  # same fitted state
    assert not np.allclose(oof, stack.transform(frame["t"]))
    with pytest.raises(ValueError, match="target"):
        TextStack().fit_transform(frame["t"])


def test_multiclass_gives_one_score_per_class_and_survives_a_tiny_class():
    rng = np.random.default_rng(3)
    words = {"a": "apple", "b": "banana", "c": "cherry"}
    y = np.array(["a"] * 60 + ["b"] * 60 + ["c"] * 2)  # "c": fewer rows than folds
    docs = [f"{words[label]} {' '.join(rng.choice(['x1', 'x2', 'x3', 'x4'], 3))}" for label in y]
    stack = TextStack("multiclass", components=0, seed=0)
    out = stack.fit_transform(pd.Series(docs, name="t"), y)
    assert list(stack.get_feature_names_out()) == ["t_text_score_a", "t_text_score_b", "t_text_score_c"]
    assert out.shape == (122, 3) and np.allclose(out.sum(axis=1), 1.0)
    assert (out[:60, 0] > out[:60, 1]).all() and (out[60:120, 1] > out[60:120, 0]).all()


def test_regression_stacks_a_ridge_prediction():
    rng = np.random.default_rng(4)
    big = rng.random(300) < 0.5
    docs = [("huge " if b else "") + " ".join(rng.choice([f"w{i}" for i in range(200)], 6)) for b in big]
    y = 3.0 * big + rng.normal(0, 0.3, 300)
    stack = TextStack("regression", components=0, seed=0)
    oof = stack.fit_transform(pd.Series(docs, name="t"), y)
    assert list(stack.get_feature_names_out()) == ["t_text_score"]
    assert np.corrcoef(oof[:, 0], y)[0, 1] > 0.9


def test_saved_pipeline_predicts_new_raw_rows():
    frame, y = random_reviews(200, seed=5, planted="refund")
    prep, _, _ = stacked(frame, y)
    buffer = io.BytesIO()
    joblib.dump(prep, buffer)
    loaded = joblib.load(io.BytesIO(buffer.getvalue()))
    new = pd.DataFrame({"t": ["w1x w2x refund", "w3x w4x", None, ""], "n": [0.0, 1.0, None, 2.0]})
    out = loaded.transform(new)
    assert np.allclose(out, prep.transform(new), equal_nan=True)
    scores = out["text_t__t_text_score"].to_numpy()
    assert scores[0] > 0.8 > 0.5 > scores[1]  # the planted word still decides


def test_character_pieces_match_unseen_word_endings():
    # The class shows in a word stem whose endings differ between training and new rows: whole
    # words never match ("refundable" was never seen), pieces of words do.
    rng = np.random.default_rng(6)
    filler = [f"{a}{b}" for a in "bcdfghklmn" for b in ("ot", "ep", "ul")]

    def rows(n, endings):
        y = rng.choice(["no", "yes"], n)
        docs = [" ".join(rng.choice(filler, 5)) + (f" refund{rng.choice(endings)}" if label == "yes" else "")
                for label in y]
        return pd.Series(docs, name="t"), y

    train, y_train = rows(300, ["ed", "ing"])
    new, y_new = rows(200, ["s", "able"])
    aucs = {}
    for kind, char in (("words", 0), ("words+pieces", 1000)):
        vectors = TextVectors(char_features=char).fit(train)
        model = LogisticRegression(C=10).fit(vectors.transform(train), y_train)
        aucs[kind] = roc_auc_score(y_new == "yes", model.predict_proba(vectors.transform(new))[:, 1])
    assert aucs["words"] < 0.6 and aucs["words+pieces"] > 0.95


def test_character_pieces_are_scikit_learns_char_wb_tfidf():
    docs = ["Refunded  twice,\tno REPLY", "refunds: never again!", "", "   ", "ça coûte cher", "refund\nrefund",
            "x", "never again"]
    fast = CharPieces((2, 5), max_features=100_000, min_df=1)
    slow = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)
    assert np.allclose(fast.fit_transform(docs).toarray(), slow.fit_transform(docs).toarray())
    assert list(fast.get_feature_names_out()) == list(slow.get_feature_names_out())
    new = ["REFUNDING never", "", "zzz unseen"]
    assert np.allclose(fast.transform(new).toarray(), slow.transform(new).toarray())
    assert fast.transform(["", " "]).shape == (2, len(slow.vocabulary_))
    pruned = CharPieces((3, 5), max_features=5, min_df=2).fit(docs)
    assert len(pruned.get_feature_names_out()) == 5 and " re" in pruned.get_feature_names_out()


def test_dense_text_is_word_and_character_tfidf():
    columns = (col("n", "numeric"), col("t", "text"))
    train = pd.DataFrame({"n": [1.0, 2.0, 3.0], "t": ["good fast service", "bad slow service", "good fast food"]})
    prep = dense_preprocessor(columns).fit(train)
    names = list(prep.named_steps["encode"].get_feature_names_out())
    assert "text_t__t_word_good" in names and "text_t__t_word_good fast" in names  # words and word pairs
    assert "text_t__t_char_ go" in names  # pieces of words, from their start
    out = prep.transform(pd.DataFrame({"n": [None], "t": [None]}))
    out = out.toarray() if sp.issparse(out) else out  # sparse or not, by how many zeros it holds
    assert out.shape == (1, len(names)) and np.isfinite(out).all()


def test_dense_inputs_stay_sparse_only_with_text():
    frame, y = random_reviews(50, seed=9)
    with_text = dense_preprocessor((col("n", "numeric"), col("t", "text"))).fit_transform(frame)
    assert sp.issparse(with_text) and with_text.nnz < 0.3 * np.prod(with_text.shape)
    without = dense_preprocessor((col("n", "numeric"), col("c", "categorical"))).fit_transform(
        frame.assign(c=y))
    assert isinstance(without, np.ndarray) and without.shape == (50, 3)


@pytest.mark.parametrize("texts", [["", "", "", ""], [None, None, None, None]], ids=["empty", "missing"])
def test_text_with_no_words_at_all(texts):
    # The column contributes nothing and nothing breaks: no dense feature, and the stacked score is
    # the training share of the second class.
    columns = (col("n", "numeric"), col("t", "text"))
    train = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "t": texts})
    dense = dense_preprocessor(columns).fit(train)
    assert dense.transform(train).shape == (4, 1)  # the number alone
    tree, _ = tree_preprocessor(columns, "binary")
    out = tree.fit_transform(train, ["x", "y", "x", "x"])
    assert out.shape == (4, 2) and np.isfinite(out.to_numpy()).all()
    assert np.asarray(tree.transform(pd.DataFrame({"n": [1.0], "t": ["brand new words"]})))[0, 1] == 0.25


def test_one_letter_words_still_give_character_pieces():
    columns = (col("t", "text"),)
    train = pd.DataFrame({"t": ["a", "b", "a", "b", "a", "b"]})
    dense = dense_preprocessor(columns).fit(train)
    assert dense.transform(train).shape[1] > 0  # no word (one letter), but pieces " a", "a "
    tree, _ = tree_preprocessor(columns, "binary")
    out = tree.fit_transform(train, ["x", "y", "x", "y", "x", "y"])
    assert np.isfinite(out.to_numpy()).all()


def test_a_single_training_row():
    columns = (col("t", "text"),)
    one = pd.DataFrame({"t": ["only one review here"]})
    dense = dense_preprocessor(columns).fit(one)
    assert dense.transform(pd.DataFrame({"t": ["one more review"]})).shape[1] > 0
    tree, _ = tree_preprocessor(columns, "binary")
    assert tree.fit_transform(one, ["x"]).shape == (1, 1)
    assert tree.transform(pd.DataFrame({"t": ["other words"]})).shape == (1, 1)


def test_vocabulary_is_counted_on_a_bounded_sample():
    docs = pd.Series([f"common x{i % 250}" for i in range(500)], name="t")  # each x in two rows
    small = TextVectors(word_features=1000, char_features=0, vocab_rows=50, seed=0).fit(docs)
    full = TextVectors(word_features=1000, char_features=0, vocab_rows=10_000, seed=0).fit(docs)
    assert len(small.get_feature_names_out()) < len(full.get_feature_names_out()) <= 1000
    assert small.transform(docs).shape == (500, len(small.get_feature_names_out()))
    # Its rows are vectorised once, in place among the others: the same as vectorising them again.
    both = TextVectors(vocab_rows=50, seed=0)
    assert abs(both.fit_transform(docs) - both.transform(docs)).max() == 0


def test_stacking_is_seeded():
    frame, y = random_reviews(150, seed=7, planted="refund")
    first, again, other = (stacked(frame, y, seed=seed)[1].to_numpy() for seed in (3, 3, 4))
    assert np.array_equal(first, again) and not np.array_equal(first[:, 1], other[:, 1])


def review_table(n=400, seed=8):
    """Reviews where a word stem (any ending) says the customer left, a number, and the order dates."""
    rng = np.random.default_rng(seed)
    filler = ["the", "delivery", "was", "fine", "staff", "order", "again", "price", "box", "app", "today"]
    left = rng.random(n) < 0.4
    reviews = [" ".join(rng.choice(filler, 7)) + (f" cancel{rng.choice(['led', 'ling', 's', 'ation'])}" if gone
                                                  else " thanks") for gone in left]
    ordered = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    return pd.DataFrame({"review": reviews, "spend": rng.normal(50, 10, n), "ordered": ordered.strftime("%Y-%m-%d"),
                         "shipped": (ordered + pd.to_timedelta(rng.integers(1, 9, n), unit="D")).strftime("%Y-%m-%d"),
                         "left": np.where(left, "yes", "no")})


@pytest.mark.parametrize("model", ["hgb", "forest", "linear", "mlp"])
def test_a_whole_fit_on_a_table_with_text_and_dates(model):
    from core.planner import Overrides, plan
    from core.schema import prepare
    from core.training import fit
    from tests.core.helpers import table

    data = prepare(table(review_table()), target="left")
    assert data.column("review").role == "text" and data.column("shipped").role == "datetime"
    chosen = plan(data, Overrides(model=model))
    result = fit(data, chosen)
    proba = result.main.model.predict_proba(result.X_valid)
    positive = list(data.classes).index("yes")
    assert roc_auc_score(np.asarray(result.y_valid) == "yes", proba[:, positive]) > 0.95
    new = pd.DataFrame({"review": ["they cancelled it", "thanks a lot", None], "spend": [40.0, None, 55.0],
                        "ordered": ["2024-05-01", None, "2024-05-03"], "shipped": ["2024-05-04", "2024-05-02", None]})
    new_proba = result.main.model.predict_proba(new)
    assert new_proba.shape == (3, 2) and new_proba[0, positive] > new_proba[1, positive]
    importances, _ = permutation_importances(result.main.model, result.X_valid, result.y_valid, data.task)
    assert importances[0].feature == "review"


def test_the_plan_says_how_text_and_dates_are_prepared():
    from core.planner import Overrides, plan
    from core.schema import prepare
    from tests.core.helpers import table

    reasons = " ".join(plan(prepare(table(review_table(100)), target="left"), Overrides(model="hgb")).reasons)
    assert "Free text (review) is read as words, pairs of words and pieces of words (3 to 5 letters)" in reasons
    assert "never saw the row" in reasons
    assert "Dates (ordered, shipped)" in reasons and "days (since 1 January 1970)" in reasons
    assert "The number of days between each two dates ('shipped' minus 'ordered', …)" in reasons
    one_date = plan(prepare(table(review_table(100).drop(columns=["shipped", "review"])), target="left"))
    assert not any("days between" in r or "Free text" in r for r in one_date.reasons)
