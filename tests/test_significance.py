"""The paired bootstrap behind the summary's intervals: its statistics against hand-computed values
and scikit-learn, its intervals against SciPy's bootstrap, and verdicts on differences whose
truth is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap
from sklearn.metrics import roc_auc_score

from promptrec.experiments.significance import _per_example, compare, statistic

N = 600


def preference_run(folder, logits, labels):
    folder.mkdir(parents=True)
    pd.DataFrame({"example_id": range(len(labels)), "user_id": [f"u{i}" for i in range(len(labels))],
                  "item_id": "7", "label": labels, "logit": logits}).to_csv(
        folder / "predictions.csv", index=False)  # fmt: skip
    return str(folder)


def test_auc_on_a_draw_with_repeats_is_sklearns_and_the_hand_computed_value():
    values = np.array([[0, 17.0], [1, 18.0], [0, 19.0], [1, 20.0]])
    assert statistic("test/auc", values, np.arange(4)) == 0.75  # pairs: 3 of 4 ordered right
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.integers(0, 2, 200), rng.normal(size=200).round(1)])  # ties
    rows = rng.integers(0, 200, 200)
    assert statistic("test/auc", values, rows) == pytest.approx(
        roc_auc_score(values[rows, 0], values[rows, 1])
    )
    assert math.isnan(statistic("test/auc", values[values[:, 0] == 1], np.arange(5)))


def test_per_example_values_of_ratings_and_top_k_lists_by_hand():
    rating = pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["1", "2", "3"],
                           "rating": [1.0, 1.0, 1.0], "predicted": [1.0, 2.0, 3.0]})  # fmt: skip
    _, squared = _per_example(rating, "test/rmse")
    assert statistic("test/rmse", squared, np.arange(3)) == pytest.approx(math.sqrt(5 / 3))
    assert statistic("test/mae", _per_example(rating, "test/mae")[1], np.array([2, 2])) == 2.0
    topk = pd.DataFrame({"user_id": ["a", "b", "c"], "target": ["5", "9", "4"],
                         "items": ["5 6 7", "6 7 9", "1 2 3"]})  # fmt: skip
    keys, ndcg = _per_example(topk, "test/ndcg@3")
    assert list(keys) == [("a", "5"), ("b", "9"), ("c", "4")]
    assert ndcg[:, 0].tolist() == [1.0, 0.5, 0.0]  # ranks 0, 2 and absent: 1/log2(rank + 2)
    assert _per_example(topk, "test/hr@2")[1][:, 0].tolist() == [1.0, 0.0, 0.0]
    assert _per_example(topk, "test/mrr@3")[1][:, 0].tolist() == [1.0, 1 / 3, 0.0]
    assert _per_example(topk, "test/coverage@3") is None  # not a per-user average


def test_interval_of_one_run_agrees_with_scipys_bootstrap(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, N)
    logits = labels + rng.normal(0, 1.5, N)
    table, _ = compare([[preference_run(tmp_path / "a", logits, labels)]], "test/auc", 2000)
    low, high = map(float, table.loc[0, "95% CI"].strip("[]").split(", "))
    theirs = bootstrap((labels, logits), roc_auc_score, paired=True, vectorized=False,
                       n_resamples=2000, method="percentile", random_state=3).confidence_interval  # fmt: skip
    assert low == pytest.approx(theirs.low, abs=0.01) and high == pytest.approx(
        theirs.high, abs=0.01
    )
    assert low < roc_auc_score(labels, logits) < high


def test_verdicts_separate_a_real_gap_from_seed_and_sampling_noise(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, N)

    def seeds(name, noise):  # three seeds of one configuration: the same signal, fresh noise
        return [preference_run(tmp_path / f"{name}{s}", labels + rng.normal(0, noise, N), labels)
                for s in range(3)]  # fmt: skip

    good, twin, worse = seeds("good", 1.0), seeds("twin", 1.0), seeds("worse", 3.0)
    table, note = compare([good, twin, worse], "test/auc", replicates=500)
    verdicts = dict(zip(["good", "twin", "worse"], table["real?"]))
    assert verdicts["worse"] == "yes"  # AUC ≈ 0.58 against ≈ 0.76
    assert "–" in (verdicts["good"], verdicts["twin"])  # one of the two equals is the best
    assert "no" in (verdicts["good"], verdicts["twin"])  # and the other is not told apart
    assert f"over the {N} test examples and the seeds" in note


def test_runs_tested_on_other_examples_get_no_interval(tmp_path):
    labels = np.arange(N) % 2
    a = preference_run(tmp_path / "a", labels + 0.5, labels)
    b = preference_run(tmp_path / "b", labels[:-1] + 0.5, labels[:-1])
    table, reason = compare([[a], [b]], "test/auc")
    assert table is None and "same examples" in reason
