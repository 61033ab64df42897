"""build-data: the reference on-disk layout field by field, exact content, dedup, streaming loader."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_tasks

from hrm_edge.data import build_render
from hrm_edge.data.arc import ArcTask, load_tasks
from hrm_edge.data.augment import Augmentation
from hrm_edge.data.build import BuildConfig, build_dataset
from hrm_edge.data.dataset import HrmDataset, parse_identifier
from hrm_edge.data.tokens import decode_grid_checked, encode_grid
from hrm_edge.errors import HrmEdgeError

AUG = 6
REFERENCE_METADATA_KEYS = [
    "pad_id",
    "ignore_label_id",
    "blank_identifier_id",
    "vocab_size",
    "seq_len",
    "num_puzzle_identifiers",
    "total_groups",
    "mean_puzzle_examples",
    "sets",
]
REFERENCE_DTYPES = {
    "inputs": np.uint8,
    "labels": np.uint8,
    "puzzle_identifiers": np.int32,
    "puzzle_indices": np.int32,
    "group_indices": np.int32,
}


@lru_cache(maxsize=1)
def sample_tasks() -> tuple[list[ArcTask], list[ArcTask]]:
    """A few real training and evaluation tasks (varied shapes, 2-10 pairs)."""
    tr = load_tasks("arc-agi-1/training").tasks[::40]
    ev = load_tasks("arc-agi-1/evaluation").tasks[::50]
    return tr, ev


def write_sources(root: Path) -> list[str]:
    tr, ev = sample_tasks()
    # one bad task among them: reported and skipped, the build goes on
    write_tasks(root / "training", tr)
    write_tasks(root / "training", {"broken": {"train": [{"input": [[1], [2, 3]], "output": [[1]]}],
                                               "test": [{"input": [[1]], "output": [[1]]}]}})
    write_tasks(root / "evaluation", ev)
    return [str(root / "training"), str(root / "evaluation")]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, object, list[str]]:
    root = tmp_path_factory.mktemp("build")
    sources = write_sources(root / "src")
    report = build_dataset(BuildConfig(sources=sources, out=root / "ds", augment=AUG, seed=7, workers=2))
    return root / "ds", report, sources


def test_reference_layout_field_by_field(built) -> None:
    out, report, _ = built
    tr, ev = sample_tasks()
    assert sorted(p.name for p in out.iterdir()) == ["build.json", "identifiers.json", "test", "train"]
    ids = json.loads((out / "identifiers.json").read_text())
    assert ids[0] == "<blank>" and len(ids) == len(set(ids))
    for split in ("train", "test"):
        d = out / split
        assert sorted(p.name for p in d.iterdir()) == sorted(
            ["dataset.json"] + [f"all__{f}.npy" for f in REFERENCE_DTYPES]
        )
        meta = json.loads((d / "dataset.json").read_text())
        assert list(meta) == REFERENCE_METADATA_KEYS
        arrays = {f: np.load(d / f"all__{f}.npy") for f in REFERENCE_DTYPES}
        for f, dt in REFERENCE_DTYPES.items():
            assert arrays[f].dtype == dt, (split, f, arrays[f].dtype)
        n_ex, n_pz = arrays["inputs"].shape[0], arrays["puzzle_identifiers"].shape[0]
        n_groups = len(tr) + len(ev) if split == "train" else len(ev)
        assert arrays["inputs"].shape == arrays["labels"].shape == (n_ex, 900)
        assert arrays["puzzle_indices"].shape == (n_pz + 1,)
        assert arrays["group_indices"].shape == (n_groups + 1,)
        assert arrays["puzzle_indices"][0] == 0 and arrays["puzzle_indices"][-1] == n_ex
        assert arrays["group_indices"][0] == 0 and arrays["group_indices"][-1] == n_pz
        assert (np.diff(arrays["puzzle_indices"]) > 0).all() and (np.diff(arrays["group_indices"]) > 0).all()
        assert meta["pad_id"] == 0 and meta["ignore_label_id"] == 0 and meta["blank_identifier_id"] == 0
        assert meta["vocab_size"] == 12 and meta["seq_len"] == 900 and meta["sets"] == ["all"]
        assert meta["num_puzzle_identifiers"] == len(ids)
        assert meta["total_groups"] == n_groups
        assert meta["mean_puzzle_examples"] == pytest.approx(n_ex / n_pz)
        assert arrays["puzzle_identifiers"].min() >= 1 and arrays["puzzle_identifiers"].max() < len(ids)
        assert report.examples[split] == n_ex
        # a group is a task: all its puzzles name the same task
        gi, pid = arrays["group_indices"], arrays["puzzle_identifiers"]
        for g in range(n_groups):
            names = {parse_identifier(int(i), ids[int(i)]).task_id for i in pid[gi[g] : gi[g + 1]]}
            assert len(names) == 1
    assert len(report.errors) == 1 and "task broken" in str(report.errors[0])


def _pairs_for(task: ArcTask, split: str):
    if split == "test":
        return task.test
    return task.train if task.split == "evaluation" else task.train + task.test


def check_examples(out: Path, tasks: dict[str, ArcTask], translated: bool = True) -> int:
    """Decode every example and compare it with the named transform of its task's pair."""
    ids = json.loads((out / "identifiers.json").read_text())
    checked = 0
    for split in ("train", "test"):
        if not (out / split).is_dir():
            continue
        ds = HrmDataset(out, split)
        seen_copies: dict[str, set] = {}
        for pz in ds.iter_puzzles():
            info = parse_identifier(pz.identifier, ids[pz.identifier])
            task = tasks[info.task_id]
            pairs = _pairs_for(task, split)
            assert len(pz.inputs) == len(pairs)
            homes = 0
            content = []
            for x, y, pair in zip(pz.inputs, pz.labels, pairs):
                dx = decode_grid_checked(x, offset="auto", strict=True)
                dy = decode_grid_checked(y, offset="auto", strict=True)
                assert dx.ok and dy.ok, (dx.reason, dy.reason)
                np.testing.assert_array_equal(dx.grid, info.augmentation.apply(pair.input))
                np.testing.assert_array_equal(dy.grid, info.augmentation.apply(pair.output))
                # input and label share the offset; one example per puzzle stays at the top-left
                ox = np.argwhere(x.reshape(30, 30) > 0).min(axis=0)
                oy = np.argwhere(y.reshape(30, 30) > 0).min(axis=0)
                assert tuple(ox) == tuple(oy)
                homes += tuple(ox) == (0, 0)
                content.append(dx.grid.tobytes() + dy.grid.tobytes() + bytes(dx.grid.shape))
                if split == "test" or not translated:
                    np.testing.assert_array_equal(x, encode_grid(dx.grid))
                checked += 1
            assert homes >= 1
            key = b"|".join(content)
            assert key not in seen_copies.setdefault(info.task_id, set()), "duplicate copy in a group"
            seen_copies[info.task_id].add(key)
    return checked


def all_sample_tasks() -> dict[str, ArcTask]:
    tr, ev = sample_tasks()
    return {t.id: t for t in tr + ev}


def test_every_example_is_the_transformed_task(built) -> None:
    out, report, _ = built
    assert check_examples(out, all_sample_tasks()) == report.total_examples


def test_chunked_rendering_matches(built, tmp_path, monkeypatch) -> None:
    """Big tasks are rendered in several chunks; the result must not depend on the chunking."""
    _, _, sources = built
    plain = build_dataset(BuildConfig(sources=sources, out=tmp_path / "one", augment=AUG, seed=3, workers=1,
                                      translate=False))
    monkeypatch.setattr(build_render, "CHUNK_BYTES", 20_000)  # 1-2 copies per chunk
    chunked = build_dataset(BuildConfig(sources=sources, out=tmp_path / "many", augment=AUG, seed=3, workers=1,
                                        translate=False))
    for split in ("train", "test"):
        for f in ("inputs", "labels"):
            a = (plain.out / split / f"all__{f}.npy").read_bytes()
            assert a == (chunked.out / split / f"all__{f}.npy").read_bytes()
    assert check_examples(chunked.out, all_sample_tasks(), translated=False) == chunked.total_examples
    translated = build_dataset(BuildConfig(sources=sources, out=tmp_path / "tr", augment=AUG, seed=3, workers=1))
    assert check_examples(translated.out, all_sample_tasks()) == translated.total_examples


def test_copies_and_translation_counts(built) -> None:
    out, report, _ = built
    build = json.loads((out / "build.json").read_text())
    recs = {r["id"]: r for r in build["task_records"]}
    assert all(r["copies"] == AUG + 1 for r in recs.values() if r["id"] not in build["not_full"])
    # translation: per puzzle one example stays at the top-left, every other one draws its offset uniformly
    # from the positions where its pair fits; so the count of examples at the top-left has a known mean and
    # variance (from each pair's span); the observed count (130 of mean 129.8, sd 9.5 with this seed) must lie
    # within 4 standard deviations
    homes, mean, var = 0, 0.0, 0.0
    for pz in HrmDataset(out, "train").iter_puzzles():
        n = len(pz.inputs)
        for x, y in zip(pz.inputs, pz.labels):
            gx = decode_grid_checked(x, offset="auto", strict=True).grid
            gy = decode_grid_checked(y, offset="auto", strict=True).grid
            span = np.maximum(gx.shape, gy.shape)
            p = 1.0 / float(np.prod(30 - span + 1))  # a free example lands at (0, 0)
            q = 1.0 / n + (1.0 - 1.0 / n) * p  # forced home with chance 1/n, else free
            mean, var = mean + q, var + q * (1.0 - q)
            homes += int(x.reshape(30, 30)[0, 0] != 0)
    assert abs(homes - mean) <= 4.0 * var**0.5, (homes, mean, var)


def test_identifiers_trace_back_to_task_and_transform(built) -> None:
    out, _, _ = built
    ds = HrmDataset(out, "train")
    info = ds.identifier_info(1)
    assert info.augmentation.is_identity and info.name == info.task_id
    info = ds.identifier_info(2)
    assert info.name == f"{info.task_id}_{info.augmentation.name}"
    assert not info.augmentation.is_identity


def test_deterministic_and_independent_of_workers(built, tmp_path) -> None:
    out, _, sources = built
    again = build_dataset(BuildConfig(sources=sources, out=tmp_path / "again", augment=AUG, seed=7, workers=1))
    for split in ("train", "test"):
        for f in REFERENCE_DTYPES:
            a = (out / split / f"all__{f}.npy").read_bytes()
            b = (again.out / split / f"all__{f}.npy").read_bytes()
            assert a == b, (split, f)
    assert (out / "identifiers.json").read_bytes() == (again.out / "identifiers.json").read_bytes()
    other = build_dataset(BuildConfig(sources=sources, out=tmp_path / "other", augment=AUG, seed=8, workers=1))
    assert (other.out / "train" / "all__inputs.npy").read_bytes() != (out / "train" / "all__inputs.npy").read_bytes()


def test_symmetric_few_colour_task_is_deduplicated(tmp_path) -> None:
    g = [[1, 1], [1, 1]]
    src = tmp_path / "sym.json"
    src.write_text(json.dumps({"train": [{"input": g, "output": g}], "test": [{"input": g, "output": g}]}))
    report = build_dataset(BuildConfig(sources=[str(src)], out=tmp_path / "ds", augment=50, workers=1))
    # 8 dihedral transforms leave it unchanged: only the 9 choices of the one colour are distinct
    assert report.identifiers == 1 + 9
    assert report.not_full == ["sym"]
    assert "test" not in report.examples  # a training-set task: its test pair trains too
    assert report.examples["train"] == 9 * 2


def test_output_is_atomic_and_not_clobbered(tmp_path) -> None:
    src = tmp_path / "t.json"
    pair = {"input": [[1]], "output": [[2]]}
    src.write_text(json.dumps({"train": [pair], "test": [pair]}))
    out = tmp_path / "ds"
    build_dataset(BuildConfig(sources=[str(src)], out=out, augment=2, workers=1))
    with pytest.raises(HrmEdgeError, match="output exists"):
        build_dataset(BuildConfig(sources=[str(src)], out=out, augment=2, workers=1))
    build_dataset(BuildConfig(sources=[str(src)], out=out, augment=3, workers=1, overwrite=True))
    assert json.loads((out / "build.json").read_text())["augment"] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folders left
    with pytest.raises(HrmEdgeError):
        build_dataset(BuildConfig(sources=[str(tmp_path / "nothing.json")], out=tmp_path / "x", augment=1))
    assert not (tmp_path / "x").exists()


def write_reference_style(root: Path) -> None:
    """A dataset exactly as the reference builder writes it (np.save of its dtypes, pydantic field order)."""
    rng = np.random.default_rng(0)
    split = root / "test"
    split.mkdir(parents=True)
    grids = [rng.integers(0, 10, size=(int(rng.integers(1, 31)), int(rng.integers(1, 31)))) for _ in range(10)]
    x = np.stack([encode_grid(g) for g in grids]).astype(np.uint8)
    np.save(split / "all__inputs.npy", x)
    np.save(split / "all__labels.npy", x[::-1].copy())
    np.save(split / "all__puzzle_identifiers.npy", np.array([1, 2, 3], dtype=np.int32))
    np.save(split / "all__puzzle_indices.npy", np.array([0, 3, 7, 10], dtype=np.int32))
    np.save(split / "all__group_indices.npy", np.array([0, 2, 3], dtype=np.int32))
    meta = {"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": 12, "seq_len": 900,
            "num_puzzle_identifiers": 4, "total_groups": 2, "mean_puzzle_examples": 10 / 3, "sets": ["all"]}
    (split / "dataset.json").write_text(json.dumps(meta))
    (root / "identifiers.json").write_text(json.dumps(["<blank>", "abc", "abc_t7_0612397845", "def"]))


def test_reference_written_dataset_loads_memory_mapped(tmp_path) -> None:
    write_reference_style(tmp_path)
    ds = HrmDataset(tmp_path, "test")
    s = ds.sets["all"]
    assert isinstance(s.inputs, np.memmap) and isinstance(s.labels, np.memmap)
    assert ds.num_examples == 10 and ds.num_puzzles == 3 and ds.metadata.total_groups == 2
    info = ds.identifier_info(2)
    assert info.task_id == "abc" and info.augmentation == Augmentation.from_name("t7_0612397845")
    batches = list(ds.iter_batches(4))
    assert [len(b.inputs) for b in batches] == [4, 4, 2]
    per_example = np.concatenate([b.puzzle_identifiers for b in batches])
    np.testing.assert_array_equal(per_example, [1, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    groups = list(ds.iter_groups())
    assert [[p.identifier for p in g] for g in groups] == [[1, 2], [3]]
    sampled = list(ds.sample_batches(3, seed=0))
    assert sampled and all(len(b.inputs) == 3 for b in sampled)


def test_loader_rejects_broken_layouts(tmp_path) -> None:
    write_reference_style(tmp_path)
    np.save(tmp_path / "test" / "all__puzzle_indices.npy", np.array([0, 3, 7, 9], dtype=np.int32))
    with pytest.raises(HrmEdgeError, match="puzzle_indices do not span"):
        HrmDataset(tmp_path, "test")
    (tmp_path / "test" / "all__labels.npy").unlink()
    with pytest.raises(HrmEdgeError, match="missing dataset array"):
        HrmDataset(tmp_path, "test")
    with pytest.raises(HrmEdgeError, match="no train split"):
        HrmDataset(tmp_path, "train")


def test_cli_build_data_on_a_named_set_with_its_counts(tmp_path: Path) -> None:
    """`hrm-edge build-data --source arc-agi-2/evaluation` as a user runs it: exit 0, and every count in
    build.json and the arrays equals what the set's tasks and the recorded copies imply."""
    out = tmp_path / "ds"
    r = run_cli("build-data", "--source", "arc-agi-2/evaluation", "--augment", "2", "--out", str(out), "--quiet",
                "--workers", "1", inprocess=True)
    assert r.returncode == 0, r.stderr
    tasks = {t.id: t for t in load_tasks("arc-agi-2/evaluation").tasks}
    build = json.loads((out / "build.json").read_text())
    recs = {rec["id"]: rec for rec in build["task_records"]}
    assert sorted(recs) == sorted(tasks) and len(tasks) == 120
    assert all(rec["copies"] == 3 for i, rec in recs.items() if i not in build["not_full"])
    copies = sum(rec["copies"] for rec in recs.values())
    ids = json.loads((out / "identifiers.json").read_text())
    assert len(ids) == 1 + copies
    # evaluation tasks: demonstrations train, test pairs are held out (test split)
    want = {"train": sum(recs[i]["copies"] * len(t.train) for i, t in tasks.items()),
            "test": sum(recs[i]["copies"] * len(t.test) for i, t in tasks.items())}
    for split, n in want.items():
        assert np.load(out / split / "all__inputs.npy", mmap_mode="r").shape == (n, 900), split
        meta = json.loads((out / split / "dataset.json").read_text())
        assert meta["total_groups"] == 120 and meta["num_puzzle_identifiers"] == len(ids)
    for split, n in want.items():  # the summary a user reads says the same
        assert re.search(rf"{split} examples\s*│\s*{n:,} in {copies} puzzles", r.stdout), r.stdout
