"""The split generator: stratification, groups, official parts, nesting, split files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.data.splits import (
    FORMAT_VERSION,
    Split,
    check_split,
    labeled_tag,
    load_split,
    make_split,
    parse_labeled,
    save_split,
)

HAM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2018-mini" / (
    "HAM10000_metadata.csv"
)
#: ISIC 2018 / HAM10000 class shares: NV dominant, DF rare.
ISIC = {"MEL": 0.111, "NV": 0.669, "BCC": 0.051, "AKIEC": 0.033, "BKL": 0.110,
        "DF": 0.012, "VASC": 0.014}
RATIOS = (0.7, 0.1, 0.2)
PARTS = ("train", "val", "test")


def _loader(n):
    return lambda size, channels: np.zeros((n, size, size, channels), np.uint8)


def _dataset(labels, class_names, kind, groups=None, predefined=None, name="synthetic"):
    n = len(labels)
    return ImageDataset(
        name=name, ids=[f"img_{i:05d}" for i in range(n)], labels=labels,
        class_names=class_names, kind=kind, channels=1, load=_loader(n), groups=groups,
        predefined=predefined or {},
    )


def isic_like(n=3000, grouped=False, seed=0, **kwargs) -> ImageDataset:
    """Single-label, ISIC class shares; with groups: lesions of 1-4 images of one class."""
    rng = np.random.default_rng(seed)
    names = list(ISIC)
    shares = np.array(list(ISIC.values()))
    if not grouped:
        labels = rng.choice(len(names), size=n, p=shares / shares.sum())
        return _dataset(labels, names, "single", **kwargs)
    labels, groups = [], []
    lesion = 0
    while len(labels) < n:
        size = int(rng.choice([1, 1, 1, 2, 2, 3, 4]))
        klass = int(rng.choice(len(names), p=shares / shares.sum()))
        labels += [klass] * size
        groups += [f"L{lesion:05d}"] * size
        lesion += 1
    return _dataset(np.array(labels[:n]), names, "single", groups=np.array(groups[:n]), **kwargs)


PREVALENCE = np.array([0.30, 0.15, 0.08, 0.04, 0.02])


def multi_like(n=3000, grouped=False, seed=0, **kwargs) -> ImageDataset:
    """Multi-label with imbalanced findings; with groups: patients of 1-6 images."""
    rng = np.random.default_rng(seed)
    names = [f"finding{k}" for k in range(len(PREVALENCE))]
    labels = (rng.random((n, len(names))) < PREVALENCE).astype(np.float32)
    groups = None
    if grouped:
        sizes = rng.integers(1, 7, size=n)
        groups = np.repeat(np.arange(n), sizes)[:n].astype(str)
    return _dataset(labels, names, "multi", groups=groups, **kwargs)


def _rows(dataset, ids):
    position = {image_id: row for row, image_id in enumerate(dataset.ids)}
    return np.array([position[i] for i in ids], dtype=np.int64)


def _per_class(dataset, ids):
    return np.array(list(dataset.class_counts(_rows(dataset, ids)).values()), dtype=float)


def _groups_of(dataset, ids):
    return set(dataset.groups[_rows(dataset, ids)].tolist())


def _quiet_split(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_split(*args, **kwargs)


def assert_stratified(dataset, split, per_class_slack, relative=0.0, size_slack=0.01):
    """Each part holds its ratio of every class, within ``slack + relative * expected``."""
    total = _per_class(dataset, dataset.ids)
    n = len(dataset)
    for part, ratio in zip(PARTS, split.ratios, strict=True):
        ids = getattr(split, part)
        assert abs(len(ids) / n - ratio) <= size_slack, (part, len(ids) / n)
        counts = _per_class(dataset, ids)
        expected = ratio * total
        assert np.all(np.abs(counts - expected) <= per_class_slack + relative * expected), (
            part, counts, expected)


# --- stratification ---------------------------------------------------------------------

def test_single_label_ungrouped_is_stratified_with_imbalanced_classes():
    dataset = isic_like()
    split = make_split(dataset, seed=0, labeled=0.2, grouped=False)
    assert not split.grouped and split.group_counts == {}
    assert_stratified(dataset, split, per_class_slack=1.0)
    assert split.eval_parts == {"val": "carved", "test": "carved"}
    assert sorted(split.train + split.val + split.test) == sorted(dataset.ids)


def test_single_label_grouped_is_stratified_and_keeps_groups_whole():
    dataset = isic_like(grouped=True)
    split = make_split(dataset, seed=3, labeled=0.2)
    assert split.grouped
    # per carve, a class is off by at most half a lesion (2 images) plus rounding; train
    # takes the errors of both carves
    assert_stratified(dataset, split, per_class_slack=6.0)
    groups = {part: _groups_of(dataset, getattr(split, part)) for part in PARTS}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert split.group_counts["train"] == len(groups["train"])
    assert sum(split.group_counts[p] for p in PARTS) == len(set(dataset.groups.tolist()))


@pytest.mark.parametrize("grouped", [False, True])
def test_multi_label_iterative_stratification(grouped):
    dataset = multi_like(grouped=grouped)
    split = make_split(dataset, seed=1, labeled=0.2, grouped=grouped)
    assert split.grouped == grouped
    if grouped:
        assert_stratified(dataset, split, per_class_slack=6.0, relative=0.05, size_slack=0.01)
        groups = {part: _groups_of(dataset, getattr(split, part)) for part in PARTS}
        for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
            assert not groups[first] & groups[second]
    else:
        assert_stratified(dataset, split, per_class_slack=2.0)


@pytest.mark.parametrize("make", [isic_like, multi_like])
def test_ungrouped_split_lets_groups_straddle(make):
    dataset = make(grouped=True)
    split = make_split(dataset, seed=0, grouped=False)
    assert not split.grouped and split.group_counts == {}
    train, test = _groups_of(dataset, split.train), _groups_of(dataset, split.test)
    assert train & test, "the paper protocol ignores groups"


def test_data_set_without_groups_is_split_ungrouped():
    split = make_split(isic_like(), seed=0, grouped=True)
    assert not split.grouped


def test_rare_classes_fall_back_with_a_warning():
    labels = np.array([0] * 200 + [1] * 100 + [2])  # class "c" has one image
    dataset = _dataset(labels, ["a", "b", "c"], "single")
    with pytest.warns(UserWarning, match="could not be stratified.*c"):
        split = make_split(dataset, seed=0, labeled=0.5)
    assert sum(len(getattr(split, p)) for p in PARTS) == len(labels)

    multi = np.zeros((300, 3), np.float32)
    multi[:100, 0] = 1
    multi[100:160, 1] = 1
    multi[7, 2] = 1  # one positive
    with pytest.warns(UserWarning, match="could not be stratified.*c"):
        make_split(_dataset(multi, ["a", "b", "c"], "multi"), seed=0, labeled=0.5)


def test_class_absent_from_train_warns():
    labels = np.array([0] * 100 + [1] * 100 + [2] * 3)
    official = [f"img_{i:05d}" for i in range(200, 203)]  # all of class c
    dataset = _dataset(labels, ["a", "b", "c"], "single", predefined={"test": official})
    with pytest.warns(UserWarning, match="c have no image in the training part"):
        split = make_split(dataset, seed=0, labeled=0.1)
    assert split.class_counts["labeled"]["c"] == 0


@pytest.mark.shared_data
@pytest.mark.skipif(not HAM.is_file(), reason=f"{HAM} is absent")
def test_real_ham10000_lesions_never_span_two_parts():
    import pandas as pd

    table = pd.read_csv(HAM)
    assert len(table) == 10015
    names = sorted(table["dx"].unique())
    labels = table["dx"].map({name: k for k, name in enumerate(names)}).to_numpy()
    dataset = ImageDataset(
        name="ham10000", ids=table["image_id"].tolist(), labels=labels, class_names=names,
        kind="single", channels=3, load=_loader(len(table)),
        groups=table["lesion_id"].to_numpy(),
    )
    split = make_split(dataset, seed=0, labeled=0.05)
    lesions = {part: _groups_of(dataset, getattr(split, part)) for part in PARTS}
    assert not lesions["train"] & lesions["val"]
    assert not lesions["train"] & lesions["test"]
    assert not lesions["val"] & lesions["test"]
    assert sum(split.group_counts[p] for p in PARTS) == table["lesion_id"].nunique()
    # lesions hold up to 6 images; class shares match the data set's in every part
    assert_stratified(dataset, split, per_class_slack=6.0, size_slack=0.005)
    for part in PARTS:
        counts = _per_class(dataset, getattr(split, part))
        shares = counts / counts.sum()
        overall = _per_class(dataset, dataset.ids) / len(dataset)
        assert np.all(np.abs(shares - overall) <= 0.005), (part, shares, overall)
    assert min(split.class_counts["labeled"].values()) >= 1


# --- labeled subsets ----------------------------------------------------------------------

@pytest.mark.parametrize("make", [isic_like, multi_like])
@pytest.mark.parametrize("specs", [(0.05, 0.1, 0.2), (20, 50, 200)])
def test_labeled_sets_are_nested_and_cover_every_class(make, specs):
    dataset = make(grouped=True)
    splits = [make_split(dataset, seed=4, labeled=spec) for spec in specs]
    for smaller, larger in zip(splits[:-1], splits[1:], strict=True):
        assert set(smaller.labeled) < set(larger.labeled)
    for split in splits:
        assert (split.train, split.val, split.test) == (
            splits[0].train, splits[0].val, splits[0].test), "parts ignore --labeled"
        assert set(split.labeled) <= set(split.train)
        assert min(split.class_counts["labeled"].values()) >= 1
        assert split.unlabeled == [i for i in split.train if i not in set(split.labeled)]
    if isinstance(specs[0], int):
        assert [len(s.labeled) for s in splits] == list(specs)
    else:
        assert [len(s.labeled) for s in splits] == [
            round(spec * len(splits[0].train)) for spec in specs]


def test_labeled_prefix_is_near_stratified():
    dataset = isic_like()
    split = make_split(dataset, seed=0, labeled=0.1)
    counts = _per_class(dataset, split.labeled)
    expected = _per_class(dataset, split.train) * len(split.labeled) / len(split.train)
    assert np.all(np.abs(counts - expected) <= 2.0), (counts, expected)


def test_rare_multi_label_class_is_labeled_first():
    labels = np.zeros((400, 3), np.float32)
    labels[:, 0] = np.arange(400) % 2
    labels[::50, 1] = 1
    labels[[3, 203], 2] = 1
    dataset = _dataset(labels, ["common", "rare", "rarest"], "multi")
    split = make_split(dataset, seed=0, labeled=3, grouped=False)
    assert all(count >= 1 for count in split.class_counts["labeled"].values())


def test_determinism_and_seeds():
    dataset = multi_like(grouped=True)
    first = make_split(dataset, seed=7, labeled=0.1)
    assert make_split(dataset, seed=7, labeled=0.1).to_dict() == first.to_dict()
    other = make_split(dataset, seed=8, labeled=0.1)
    assert other.test != first.test and other.labeled != first.labeled
    single = isic_like(grouped=True)
    assert make_split(single, seed=1).to_dict() == make_split(single, seed=1).to_dict()
    assert make_split(single, seed=1).train != make_split(single, seed=2).train


# --- official parts ------------------------------------------------------------------------

def test_official_test_part_is_used_as_is_and_the_rest_carved():
    base = isic_like(n=2000, grouped=True)
    official = base.ids[1500:]
    dataset = isic_like(n=2000, grouped=True, predefined={"test": list(reversed(official))})
    split = make_split(dataset, seed=0)
    assert split.eval_parts == {"val": "carved", "test": "official"}
    assert sorted(split.test) == sorted(official)
    assert sorted(split.train + split.val) == sorted(dataset.ids[:1500])
    assert len(split.val) / 1500 == pytest.approx(1 / 8, abs=0.01)  # 0.1 / (0.7 + 0.1)


def test_official_val_and_test_leave_everything_else_to_train():
    dataset = multi_like(n=600, predefined={"val": [f"img_{i:05d}" for i in range(50)],
                                            "test": [f"img_{i:05d}" for i in range(50, 150)]})
    split = make_split(dataset, seed=0, labeled=0.5)
    assert split.eval_parts == {"val": "official", "test": "official"}
    assert split.val == [f"img_{i:05d}" for i in range(50)]
    assert len(split.test) == 100 and len(split.train) == 450


def test_zero_ratio_leaves_a_part_empty():
    split = make_split(isic_like(n=500), seed=0, ratios=(0.8, 0.0, 0.2), labeled=0.5)
    assert split.val == [] and split.eval_parts["val"] == "none"


def test_official_part_with_unknown_ids_is_a_user_error():
    dataset = isic_like(n=200, predefined={"test": ["img_00001", "nope"]})
    with pytest.raises(UserError, match="official test part.*'nope'"):
        make_split(dataset)


# --- split files ------------------------------------------------------------------------

@pytest.mark.parametrize("labeled", [0.1, 1.0, 30])
def test_save_load_round_trip(tmp_path, labeled):
    dataset = isic_like(n=600, grouped=True)
    split = make_split(dataset, seed=2, labeled=labeled)
    path = save_split(split, tmp_path / "sub" / "split.json")
    loaded = load_split(path)
    assert loaded == split
    assert type(loaded.labeled_spec) is type(split.labeled_spec)
    record = json.loads(path.read_text())
    assert record["format_version"] == FORMAT_VERSION
    assert record["dataset"] == dataset.name and record["fingerprint"] == dataset.fingerprint()
    assert record["grouped"] is True and record["ratios"] == list(RATIOS)
    assert record["sizes"]["train"] == len(split.train)
    assert set(record["class_counts"]) == set(record["group_counts"]) == {*PARTS, "labeled"}
    assert Split.from_dict(split.to_dict()) == split
    check_split(loaded, dataset)


def test_from_dict_accepts_records_without_the_newer_keys():
    split = make_split(isic_like(n=300), seed=0, labeled=0.5)
    record = split.to_dict()
    for key in ("format_version", "grouped", "eval_parts", "group_counts", "labeled_kind"):
        del record[key]
    assert Split.from_dict(record).train == split.train


def _corrupt(record, key, value):
    record = json.loads(json.dumps(record))
    if value is KeyError:
        del record[key]
    else:
        record[key] = value
    return record


@pytest.mark.parametrize("change,message", [
    (lambda r: "{not json", "not valid JSON"),
    (lambda r: [1, 2], "expected a JSON object"),
    (lambda r: _corrupt(r, "fingerprint", KeyError), "missing key 'fingerprint'"),
    (lambda r: _corrupt(r, "seed", "zero"), "'seed' must be an integer"),
    (lambda r: _corrupt(r, "grouped", "yes"), "'grouped'"),
    (lambda r: _corrupt(r, "train", "img_00001"), "'train' must be a list"),
    (lambda r: _corrupt(r, "ratios", [0.5, 0.5]), "ratios"),
    (lambda r: _corrupt(r, "format_version", 99), "format version 99"),
    (lambda r: _corrupt(r, "eval_parts", {"val": "carved"}), "eval_parts"),
    (lambda r: _corrupt(r, "labeled", r["test"][:2]), "not a subset of the train part"),
    (lambda r: _corrupt(r, "val", r["val"] + r["test"][:1]), "val and test parts overlap"),
    (lambda r: _corrupt(r, "test", r["test"] + r["test"][:1]), "more than once"),
    (lambda r: _corrupt(r, "sizes", {**r["sizes"], "train": 1}), "sizes"),
])
def test_corrupted_split_files_are_user_errors_naming_the_file(tmp_path, change, message):
    split = make_split(isic_like(n=300), seed=0, labeled=0.5)
    path = tmp_path / "split.json"
    content = change(split.to_dict())
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(UserError, match=message) as info:
        load_split(path)
    assert str(path) in str(info.value)


def test_a_labeled_set_contradicting_its_declared_fraction_is_refused(tmp_path):
    """Issue 9, item 3: 1 labeled image in a file that says 'labeled 0.5' was accepted."""
    split = make_split(isic_like(n=300), seed=0, labeled=0.5)
    record = split.to_dict()
    record["labeled"] = record["labeled"][:1]
    record["sizes"]["labeled"] = 1
    path = tmp_path / "split.json"
    path.write_text(json.dumps(record))
    with pytest.raises(UserError, match=r"labeled fraction 0.5 of the \d+ train images is "
                                        r"\d+ images, but the labeled part lists 1"):
        load_split(path)


def test_a_split_is_checked_against_the_data_set_it_is_used_with():
    dataset = isic_like(n=300)
    split = make_split(dataset, seed=0, labeled=0.5)
    wrong_counts = Split.from_dict({**split.to_dict(), "class_counts": {
        **split.class_counts, "test": {name: 0 for name in dataset.class_names}}})
    with pytest.raises(UserError, match="class counts of its test part"):
        check_split(wrong_counts, dataset)
    # Same size, but every labeled image of one class swapped for unlabeled ones of others.
    position = {image_id: row for row, image_id in enumerate(dataset.ids)}
    label = {image_id: int(dataset.labels[position[image_id]]) for image_id in split.train}
    dropped = next(c for c in range(len(dataset.class_names))
                   if any(label[i] == c for i in split.labeled))
    keep = [i for i in split.labeled if label[i] != dropped]
    spare = [i for i in split.unlabeled if label[i] != dropped]
    labeled = keep + spare[: len(split.labeled) - len(keep)]
    record = split.to_dict()
    record["labeled"] = labeled
    record["class_counts"] = {**record["class_counts"],
                              "labeled": dataset.class_counts(
                                  np.array([position[i] for i in labeled]))}
    uncovered = Split.from_dict(record)
    with pytest.raises(UserError, match=f"no image of class\\(es\\) "
                                        f"{dataset.class_names[dropped]}"):
        check_split(uncovered, dataset)


def test_missing_split_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_split(tmp_path / "absent.json")


def test_fingerprint_mismatch_names_both_fingerprints():
    dataset = isic_like(n=300)
    split = make_split(dataset, seed=0, labeled=0.5)
    labels = dataset.labels.copy()
    labels[0] = (labels[0] + 1) % len(ISIC)
    changed = _dataset(labels, dataset.class_names, "single")
    with pytest.raises(UserError, match="another version of the data set") as info:
        check_split(split, changed)
    assert split.fingerprint in str(info.value)
    assert changed.fingerprint() in str(info.value)
    assert "labels differ" in str(info.value)


def test_ids_outside_the_data_set_are_reported():
    dataset = isic_like(n=300)
    split = make_split(dataset, seed=0, labeled=0.5)
    split.test = split.test[:-1] + ["ghost"]
    with pytest.raises(UserError, match="not in data set.*'ghost'"):
        check_split(split, dataset)


# --- user errors --------------------------------------------------------------------------

@pytest.mark.parametrize("ratios,message", [
    ((0.5, 0.3, 0.3), "sum to 1"),
    ((0.0, 0.5, 0.5), "train > 0"),
    ((0.8, -0.1, 0.3), "non-negative"),
    ((0.7, 0.3), "three"),
    (("a", 0.5, 0.5), "three numbers"),
])
def test_bad_ratios(ratios, message):
    with pytest.raises(UserError, match=message):
        make_split(isic_like(n=200), ratios=ratios)


def test_labeled_count_above_train_size():
    with pytest.raises(UserError, match="more labeled images than the training part holds"):
        make_split(isic_like(n=200), labeled=500)


@pytest.mark.parametrize("labeled", [0, -0.5, 1.5, True])
def test_bad_labeled_values(labeled):
    with pytest.raises(UserError, match="--labeled"):
        make_split(isic_like(n=200), labeled=labeled)


@pytest.mark.parametrize("make", [isic_like, multi_like])
def test_too_small_labeled_count_names_the_missing_classes(make):
    with pytest.raises(UserError, match=r"misses class\(es\) .*(DF|finding4)"):
        _quiet_split(make(), seed=0, labeled=2)


def test_too_few_images_to_carve():
    dataset = _dataset(np.array([0]), ["a"], "single")
    with pytest.raises(UserError, match="cannot carve the test part"):
        make_split(dataset)


def test_parse_labeled_and_tag_unchanged():
    assert parse_labeled("0.05") == 0.05 and parse_labeled("40") == 40
    assert labeled_tag(0.05) == "0.05" and labeled_tag(40) == "40"


def test_official_part_sharing_groups_with_the_rest_warns():
    labels = np.repeat([0, 1] * 50, 2)
    groups = np.repeat(np.arange(100), 2).astype(str)  # pairs of images
    dataset = _dataset(labels, ["a", "b"], "single", groups=groups,
                       predefined={"test": [f"img_{i:05d}" for i in range(1, 41)]})
    with pytest.warns(UserWarning, match="2 group.*official test part"):
        split = make_split(dataset, seed=0, labeled=0.5)
    assert split.eval_parts["test"] == "official" and len(split.test) == 40


def test_official_train_part_is_the_pool():
    ids = [f"img_{i:05d}" for i in range(300)]
    dataset = isic_like(n=300, predefined={"train": ids[:200], "test": ids[200:280]})
    with pytest.warns(UserWarning, match="20 image.*in no official part"):
        split = make_split(dataset, seed=0, labeled=0.5)
    assert sorted(split.train + split.val) == ids[:200]
    assert split.test == ids[200:280]
    assert split.eval_parts == {"val": "carved", "test": "official"}
