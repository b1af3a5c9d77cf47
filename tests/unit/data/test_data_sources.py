"""Reading sources, fingerprinting them and hashing frames."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from mlcycle.data import content_hash, fingerprint_source, read_source
from mlcycle.errors import BadInput, NotFound
from mlcycle.spec import Source


def _frame(rows: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "n": rng.integers(0, 100, size=rows),
            "c": rng.choice(["a", "b", "c"], size=rows),
            "y": rng.integers(0, 2, size=rows).astype(bool),
        }
    )


def _src(path: str, fmt: str = "auto") -> Source:
    return Source.model_validate({"path": path, "format": fmt})


@pytest.fixture
def memdir() -> Iterator[str]:
    """A fresh folder on fsspec's (process-global) memory filesystem."""
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex}"
    fs.mkdir(root)
    yield root
    fs.rm(root, recursive=True)


# --- read_source: good input ----------------------------------------------------------


def test_reads_parquet_relative_to_base_dir(tmp_path: Path) -> None:
    df = _frame()
    (tmp_path / "data").mkdir()
    df.to_parquet(tmp_path / "data" / "d.parquet")
    got = read_source(_src("data/d.parquet"), tmp_path)
    pd.testing.assert_frame_equal(got, df)


def test_reads_csv_with_same_values(tmp_path: Path) -> None:
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    got = read_source(_src("d.csv"), tmp_path)
    pd.testing.assert_frame_equal(got, df, check_exact=False, rtol=1e-12)


def test_reads_absolute_path_ignoring_base_dir(tmp_path: Path) -> None:
    df = _frame()
    df.to_parquet(tmp_path / "d.parquet")
    got = read_source(_src(str(tmp_path / "d.parquet")), Path("/nonexistent"))
    assert len(got) == len(df)


def test_reads_file_url(tmp_path: Path) -> None:
    _frame().to_parquet(tmp_path / "d.parquet")
    got = read_source(_src(f"file://{tmp_path}/d.parquet"), Path("/nonexistent"))
    assert len(got) == 50


def test_folder_reads_every_file_sorted_and_skips_hidden(tmp_path: Path) -> None:
    first, second = _frame(10, seed=1), _frame(20, seed=2)
    second.to_csv(tmp_path / "b.csv", index=False)
    first.to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".partial.csv").write_text("garbage,\n1,2,3\n")
    (tmp_path / "notes.txt").write_text("not data")
    got = read_source(_src("."), tmp_path)
    assert len(got) == 30
    np.testing.assert_allclose(got["x"].to_numpy(), np.r_[first["x"], second["x"]])


def test_folder_aligns_column_order(tmp_path: Path) -> None:
    df = _frame(10)
    df.to_parquet(tmp_path / "a.parquet")
    df[["y", "c", "n", "x"]].to_parquet(tmp_path / "b.parquet")
    got = read_source(_src(str(tmp_path)), Path("."))
    assert list(got.columns) == ["x", "n", "c", "y"]
    assert got["x"].iloc[10] == df["x"].iloc[0]


def test_glob_matches_files(tmp_path: Path) -> None:
    for i in range(3):
        _frame(5, seed=i).to_parquet(tmp_path / f"part-{i}.parquet")
    _frame(7).to_parquet(tmp_path / "other.parquet")
    got = read_source(_src("part-*.parquet"), tmp_path)
    assert len(got) == 15


def test_explicit_format_overrides_suffix(tmp_path: Path) -> None:
    _frame(5).to_csv(tmp_path / "export.txt", index=False)
    got = read_source(_src("export.txt", "csv"), tmp_path)
    assert list(got.columns) == ["x", "n", "c", "y"]
    assert len(got) == 5


def test_reads_gzipped_csv(tmp_path: Path) -> None:
    df = _frame(8)
    with gzip.open(tmp_path / "d.csv.gz", "wt") as fh:
        df.to_csv(fh, index=False)
    got = read_source(_src("d.csv.gz"), tmp_path)
    assert got["n"].tolist() == df["n"].tolist()


def test_reads_memory_url(memdir: str) -> None:
    fs = fsspec.filesystem("memory")
    df = _frame(12)
    with fs.open(f"{memdir}/a.csv", "w") as fh:
        df.to_csv(fh, index=False)
    with fs.open(f"{memdir}/b.parquet", "wb") as fh:
        df.to_parquet(fh)
    assert len(read_source(_src(f"memory://{memdir}/a.csv"), Path("."))) == 12
    assert len(read_source(_src(f"memory://{memdir}/b.parquet"), Path("."))) == 12
    assert len(read_source(_src(f"memory://{memdir}/*.csv"), Path("."))) == 12


# --- read_source: bad input -----------------------------------------------------------


def test_missing_file_lists_the_folder(tmp_path: Path) -> None:
    (tmp_path / "flights.parquet").write_bytes(b"x")
    (tmp_path / "other.csv").write_text("a\n1\n")
    with pytest.raises(NotFound) as err:
        read_source(_src("flight.parquet"), tmp_path)
    assert "flight.parquet" in err.value.what
    assert "flights.parquet" in err.value.why and "other.csv" in err.value.why
    assert "data.source.path" in err.value.fix
    assert err.value.exit_code == 2


def test_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        read_source(_src("nope/d.csv"), tmp_path)
    assert "does not exist either" in err.value.why


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("hi")
    with pytest.raises(NotFound) as err:
        read_source(_src("."), tmp_path)
    assert "readme.md" in err.value.why


def test_glob_without_match(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    with pytest.raises(NotFound) as err:
        read_source(_src("*.parquet"), tmp_path)
    assert "a.csv" in err.value.why


def test_malformed_csv_names_file_and_line(tmp_path: Path) -> None:
    lines = ["a,b,c"] + [f"{i},{i},{i}" for i in range(10)]
    lines[6] = "1,2,3,4"
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInput) as err:
        read_source(_src("bad.csv"), tmp_path)
    assert "bad.csv" in err.value.what
    assert "line 7" in err.value.what
    assert "Expected 3 fields" in err.value.why


def test_unclosed_quote_names_line(tmp_path: Path) -> None:
    lines = ["a,b"] + [f"{i},{i}" for i in range(5)]
    lines[4] = '1,"2'
    (tmp_path / "q.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInput) as err:
        read_source(_src("q.csv"), tmp_path)
    assert "q.csv" in err.value.what and "line 5" in err.value.what


def test_malformed_line_in_second_file_of_folder(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    (tmp_path / "b.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(BadInput) as err:
        read_source(_src("."), tmp_path)
    assert "b.csv" in err.value.what and "line 3" in err.value.what


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_zero_byte_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(BadInput) as err:
        read_source(_src(name), tmp_path)
    assert name in err.value.what and "empty" in err.value.what


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(BadInput) as err:
        read_source(_src("h.csv"), tmp_path)
    assert "no rows" in err.value.what and "h.csv" in err.value.why


def test_zero_row_parquet(tmp_path: Path) -> None:
    _frame().iloc[:0].to_parquet(tmp_path / "z.parquet")
    with pytest.raises(BadInput, match="no rows"):
        read_source(_src("z.parquet"), tmp_path)


def test_corrupt_parquet_names_file(tmp_path: Path) -> None:
    _frame().to_parquet(tmp_path / "d.parquet")
    data = (tmp_path / "d.parquet").read_bytes()
    (tmp_path / "d.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput) as err:
        read_source(_src("d.parquet"), tmp_path)
    assert "d.parquet" in err.value.what and "Parquet" in err.value.what


def test_not_utf8_csv(tmp_path: Path) -> None:
    (tmp_path / "l1.csv").write_bytes("name\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(BadInput) as err:
        read_source(_src("l1.csv"), tmp_path)
    assert "l1.csv" in err.value.what and "UTF-8" in err.value.what


def test_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text("[]")
    with pytest.raises(BadInput) as err:
        read_source(_src("d.json"), tmp_path)
    assert "unknown format" in err.value.what and "data.source.format" in err.value.fix


def test_folder_mixing_formats(tmp_path: Path) -> None:
    _frame(3).to_csv(tmp_path / "a.csv", index=False)
    _frame(3).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(BadInput, match="mixes Parquet and CSV"):
        read_source(_src("."), tmp_path)
    # Naming the format picks one kind of file.
    assert len(read_source(_src(".", "parquet"), tmp_path)) == 3


def test_files_with_different_columns(tmp_path: Path) -> None:
    _frame(3).to_csv(tmp_path / "a.csv", index=False)
    _frame(3).drop(columns=["c"]).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(BadInput) as err:
        read_source(_src("."), tmp_path)
    assert "different columns" in err.value.what
    assert "b.csv" in err.value.why and "'c'" in err.value.why


# --- fingerprint_source -----------------------------------------------------------------


def test_fingerprint_is_stable_and_location_independent(tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    _frame(30).to_parquet(one / "a.parquet")
    _frame(30, seed=3).to_parquet(one / "b.parquet")
    shutil.copytree(one, tmp_path / "two")
    first = fingerprint_source(_src("one"), tmp_path)
    assert first == fingerprint_source(_src("one"), tmp_path)
    # The documented recipe, rebuilt: per file in name order, [relative name, size,
    # sha256 of the bytes] as JSON plus a newline, all under one sha256.
    outer = hashlib.sha256()
    for name in ("a.parquet", "b.parquet"):
        data = (one / name).read_bytes()
        record = [name, len(data), hashlib.sha256(data).hexdigest()]
        outer.update(json.dumps(record).encode() + b"\n")
    assert first == outer.hexdigest()
    assert first == fingerprint_source(_src("two"), tmp_path)
    assert first == fingerprint_source(_src(str(tmp_path / "one")), Path("/"))


def test_fingerprint_changes_with_a_byte_or_a_name(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    before = fingerprint_source(_src("."), tmp_path)
    (tmp_path / "a.csv").write_text("x\n1\n3\n")
    after = fingerprint_source(_src("."), tmp_path)
    (tmp_path / "a.csv").rename(tmp_path / "b.csv")
    renamed = fingerprint_source(_src("."), tmp_path)
    (tmp_path / "c.csv").write_text("x\n4\n")
    added = fingerprint_source(_src("."), tmp_path)
    assert len({before, after, renamed, added}) == 4


def test_fingerprint_missing_source(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        fingerprint_source(_src("missing.parquet"), tmp_path)


def test_fingerprint_memory_url(memdir: str) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memdir}/a.csv", b"x\n1\n")
    key = fingerprint_source(_src(f"memory://{memdir}/a.csv"), Path("."))
    fs.pipe(f"{memdir}/a.csv", b"x\n2\n")
    assert key != fingerprint_source(_src(f"memory://{memdir}/a.csv"), Path("."))


# --- content_hash ---------------------------------------------------------------------------


def test_content_hash_ignores_file_encoding(tmp_path: Path) -> None:
    df = _frame()
    df["n"] = df["n"].astype("int64")
    df.to_parquet(tmp_path / "d.parquet")
    df.to_csv(tmp_path / "d.csv", index=False)
    from_parquet = read_source(_src("d.parquet"), tmp_path)
    from_csv = read_source(_src("d.csv"), tmp_path)
    # CSV round-trips floats exactly with pandas' repr; the two frames are equal.
    pd.testing.assert_frame_equal(from_parquet, from_csv)
    assert content_hash(from_parquet) == content_hash(from_csv) == content_hash(df)


def test_content_hash_object_and_str_text_hash_alike() -> None:
    df = pd.DataFrame({"c": ["a", "b", None]})
    assert content_hash(df.astype({"c": object})) == content_hash(df.astype({"c": "str"}))


def test_content_hash_sees_order_names_values_and_dtypes() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    base = content_hash(df)
    assert base == content_hash(df.copy())
    assert base == content_hash(df.set_axis([10, 11, 12]))  # the index does not count
    assert base != content_hash(df.iloc[::-1].reset_index(drop=True))
    assert base != content_hash(df.rename(columns={"a": "A"}))
    assert base != content_hash(df.astype({"a": "float64"}))
    changed = df.copy()
    changed.loc[1, "b"] = "q"
    assert base != content_hash(changed)
    assert base != content_hash(df[["b", "a"]])


def test_content_hash_of_unhashable_cells_and_empty_frames() -> None:
    df = pd.DataFrame({"a": [[1, 2], [3]], "b": [1, 2]})
    assert content_hash(df) == content_hash(df.copy())
    assert content_hash(df) != content_hash(pd.DataFrame({"a": [[1, 2], [4]], "b": [1, 2]}))
    assert content_hash(pd.DataFrame()) != content_hash(pd.DataFrame({"a": []}))
