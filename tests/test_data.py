"""Loaders, the leave-one-out split and example building, on real MovieLens-100K."""

from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

from promptrec.data.duplicates import (
    duplicate_items,
    merge_duplicate_items,
    targets_shown_under_another_id,
)
from promptrec.data.examples import cap_examples
from promptrec.data.loaders import GROUPLENS_GENRES, InteractionData, load_atomic, load_grouplens
from promptrec.data.splits import content_hash, leave_one_out, load_or_build_split, select_users
from promptrec.errors import ConfigError, DataError
from promptrec.tasks import build_task

PREFERENCE = build_task(OmegaConf.create({"name": "preference", "like_threshold": 4.0}))


@pytest.fixture(scope="module")
def ml100k(atomic_dir):
    return load_atomic(atomic_dir, "ml-100k")


@pytest.fixture(scope="module")
def split(ml100k):
    return leave_one_out(ml100k.interactions)


def test_atomic_loader_reads_the_real_files(ml100k):
    assert ml100k.interactions.shape == (100_000, 4)
    assert ml100k.interactions["user_id"].nunique() == 943
    assert len(ml100k.items) == 1682 and len(ml100k.users) == 943
    toy = ml100k.items.set_index("item_id").loc["1"]
    assert (toy.title, toy.year, toy.genres) == (
        "Toy Story",
        1995,
        ("Animation", "Children's", "Comedy"),
    )
    assert ml100k.users.set_index("user_id").loc["1"].to_dict() == {
        "age": 24,
        "gender": "M",
        "occupation": "technician",
    }


def _write_grouplens(data, folder):
    """GroupLens' own layout, built from atomic frames: the two loaders must then agree exactly."""
    folder.mkdir()
    data.interactions.to_csv(folder / "u.data", sep="\t", header=False, index=False,
                             columns=["user_id", "item_id", "rating", "timestamp"], float_format="%.0f")  # fmt: skip
    lines = []
    for row in data.items.itertuples(index=False):
        year = "" if pd.isna(row.year) else int(row.year)
        date = f"01-Jan-{year}" if year != "" else ""
        title = f"{row.title} ({year})" if year != "" else row.title
        flags = ["1" if g in row.genres else "0" for g in GROUPLENS_GENRES]
        lines.append("|".join([row.item_id, title, date, "", "http://example.org", *flags]))
    (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    users = data.users.assign(zip_code="00000")
    users.to_csv(folder / "u.user", sep="|", header=False, index=False)


def test_grouplens_and_atomic_loaders_give_identical_frames(ml100k, atomic_dir, tmp_path):
    # Genres written in GroupLens' canonical order, as RecBole's files list them.
    _write_grouplens(ml100k, tmp_path / "ml-100k")
    other = load_grouplens(tmp_path / "ml-100k")
    pd.testing.assert_frame_equal(other.interactions, ml100k.interactions)
    pd.testing.assert_frame_equal(other.users, ml100k.users)
    pd.testing.assert_frame_equal(other.items, ml100k.items)


def test_grouplens_fetch_unpacks_the_zip_and_records_checksums(ml100k, tmp_path):
    """The GroupLens download path, fed a local zip through a file:// URL (no network here)."""
    import zipfile

    from promptrec.data.sources import fetch_grouplens_ml100k

    small = InteractionData(select_users(ml100k.interactions, 5), ml100k.items, ml100k.users)
    _write_grouplens(small, tmp_path / "src")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in ("u.data", "u.item", "u.user"):
            bundle.write(tmp_path / "src" / name, f"ml-100k/{name}")
    folder = fetch_grouplens_ml100k(tmp_path / "data", url=archive.as_uri())
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "u.data", "u.item", "u.user"]
    pd.testing.assert_frame_equal(load_grouplens(folder).interactions, small.interactions)
    with pytest.raises(DataError, match="Could not download"):
        fetch_grouplens_ml100k(tmp_path / "other", url=(tmp_path / "missing.zip").as_uri())


def test_loader_errors_name_the_file_and_column(atomic_dir, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_atomic(tmp_path, "ml-100k")
    bad = tmp_path / "bad"
    bad.mkdir()
    for suffix in ("item", "user"):
        (bad / f"ml-100k.{suffix}").write_bytes((atomic_dir / f"ml-100k.{suffix}").read_bytes())
    (bad / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\tfive\t3\n"
    )
    with pytest.raises(DataError, match="'rating'.*row 2.*'five'"):
        load_atomic(bad, "ml-100k")
    (bad / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\n1\t2\t5\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['timestamp'\]"):
        load_atomic(bad, "ml-100k")


def test_split_is_leave_one_out_by_time(split):
    counts = split["split"].value_counts()
    assert counts["test"] == counts["val"] == 943 and counts["train"] == 100_000 - 2 * 943
    last = split.groupby("user_id").tail(1)
    assert (last["split"] == "test").all()
    # test is never earlier than anything else of the same user
    latest = split.groupby("user_id")["timestamp"].max()
    test = split[split["split"] == "test"].set_index("user_id")["timestamp"]
    assert (test == latest.loc[test.index]).all()


def test_ties_keep_file_order_not_item_id_order():
    # user 1's last two interactions share a timestamp; file order says item 9 came after item 5.
    frame = pd.DataFrame({"user_id": ["1"] * 4, "item_id": ["7", "9", "5", "3"],
                          "rating": [4.0] * 4, "timestamp": [1, 2, 5, 5]})  # fmt: skip
    frame = frame.iloc[[0, 1, 3, 2]].reset_index(drop=True)  # file order: 7, 9, 3, 5
    out = leave_one_out(frame)
    assert out.set_index("item_id")["split"].to_dict() == {
        "7": "train",
        "9": "train",
        "3": "val",
        "5": "test",
    }


def test_users_with_too_few_interactions_stay_in_train():
    frame = pd.DataFrame({"user_id": ["a", "a", "b", "b", "b"], "item_id": list("12345"),
                          "rating": [5.0] * 5, "timestamp": [1, 2, 1, 2, 3]})  # fmt: skip
    out = leave_one_out(frame)
    assert out[out.user_id == "a"]["split"].tolist() == ["train", "train"]
    assert out[out.user_id == "b"]["split"].tolist() == ["train", "val", "test"]
    with pytest.raises(ConfigError, match="min_user_interactions"):
        leave_one_out(frame, min_user_interactions=2)


def test_split_is_deterministic_and_its_hash_stable(ml100k, split):
    again = leave_one_out(ml100k.interactions.copy())
    assert content_hash(again) == content_hash(split) == "1e6a1f2787d5b022"
    assert content_hash(leave_one_out(select_users(ml100k.interactions, 10))) != content_hash(split)


def test_saved_split_is_reused_and_rebuilt_when_corrupted(ml100k, tmp_path):
    inter = select_users(ml100k.interactions, 20)
    first, digest = load_or_build_split(inter, tmp_path, "k", min_user_interactions=3)
    table = tmp_path / "split-k" / "split.parquet"
    mtime = table.stat().st_mtime_ns
    _, again = load_or_build_split(inter, tmp_path, "k", min_user_interactions=3)
    assert again == digest and table.stat().st_mtime_ns == mtime  # reused, not rebuilt
    first.assign(rating=1.0).to_parquet(table, index=False)  # tamper with the saved file
    rebuilt, third = load_or_build_split(inter, tmp_path, "k", min_user_interactions=3)
    assert third == digest
    pd.testing.assert_frame_equal(rebuilt, first)


def test_history_never_holds_the_target_or_anything_later(split):
    """On the whole real data set: every history item precedes its target in the user's timeline."""
    positions = split[["user_id", "item_id", "position"]]
    assert not positions.duplicated(["user_id", "item_id"]).any()  # ML-100K repeats no (user, item)
    for which in ("train", "val", "test"):
        ex = PREFERENCE.examples(split, which, history_len=50)
        assert len(ex) == (split["split"] == which).sum()
        target = ex.merge(positions, on=["user_id", "item_id"], suffixes=("", "_split"))
        assert (target.position == target.position_split).all()  # the example's own position
        hist = (
            ex[["example_id", "user_id", "position", "history_items"]]
            .explode("history_items")
            .dropna()
        )
        hist = hist.rename(columns={"history_items": "item_id"}).merge(
            positions, on=["user_id", "item_id"], suffixes=("", "_hist")
        )
        assert len(hist) == ex.history_items.map(len).sum()
        assert (hist.position_hist < hist.position).all()
        # the history is the *most recent* prefix: its last item sits right before the target
        last = hist.groupby("example_id").position_hist.max()
        assert (last == ex.set_index("example_id").position.loc[last.index] - 1).all()


def test_preference_labels_and_cap(split):
    ex = PREFERENCE.examples(split, "test", history_len=3)
    assert ((ex.rating >= 4).astype(int) == ex.labels).all()
    assert ex.history_items.map(len).max() == 3
    capped = cap_examples(ex, 100, seed=1)
    assert len(capped) == 100 and capped.example_id.is_unique
    pd.testing.assert_frame_equal(capped, cap_examples(ex, 100, seed=1))
    assert not capped.equals(cap_examples(ex, 100, seed=2))


def test_duplicate_films_are_found_and_merged_to_their_first_id(ml100k):
    copies = duplicate_items(ml100k.items)
    assert len(copies) == 18  # MovieLens-100K lists 18 films twice
    titles = ml100k.items.set_index("item_id")
    for copy, first in copies.items():
        assert titles.at[copy, "title"] == titles.at[first, "title"] and int(first) < int(copy)
        assert titles.at[copy, "year"] == titles.at[first, "year"]
    merged = merge_duplicate_items(ml100k, copies)
    assert not set(copies) & (set(merged.interactions.item_id) | set(merged.items.item_id))
    assert not merged.interactions.duplicated(["user_id", "item_id"]).any()
    assert duplicate_items(merged.items) == {}


def test_merging_keeps_each_users_earliest_interaction_with_the_film():
    items = pd.DataFrame({"item_id": ["1", "2", "3"], "title": ["Heat", "heat ", "Alien"],
                          "year": [1995, 1995, 1979], "genres": [(), (), ()]})  # fmt: skip
    inter = pd.DataFrame({"user_id": ["u", "u", "u", "v"], "item_id": ["2", "1", "3", "2"],
                          "rating": [5.0, 1.0, 3.0, 4.0], "timestamp": [10, 20, 30, 5]})  # fmt: skip
    copies = duplicate_items(items)
    assert copies == {"2": "1"}
    merged = merge_duplicate_items(InteractionData(inter, items, pd.DataFrame()), copies)
    # u saw the film first as "2" (t=10, 5 stars): that rating stays, under id "1"
    assert merged.interactions.values.tolist() == [["u", "1", 5.0, 10], ["u", "3", 3.0, 30],
                                                   ["v", "1", 4.0, 5]]  # fmt: skip
    examples = pd.DataFrame({"item_id": ["1", "3"], "history_items": [["2", "3"], ["1"]]})
    assert targets_shown_under_another_id(examples, copies) == 1


def test_merge_setting_changes_the_split_hash_only_when_on(train_cfg):
    from omegaconf import open_dict

    from promptrec.runtime.build import build_datamodule

    before = build_datamodule(train_cfg)
    before.prepare_data()
    with open_dict(train_cfg):
        train_cfg.data.merge_duplicate_items = True
    merged = build_datamodule(train_cfg)
    merged.prepare_data()
    assert before.prepared.duplicates and merged.prepared.duplicates == {}
    assert merged.prepared.split_hash != before.prepared.split_hash
    assert not set(before.prepared.duplicates) & set(merged.prepared.split.item_id)
