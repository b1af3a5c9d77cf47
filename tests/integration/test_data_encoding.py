"""CSV text encodings at ingest: a wrong one is refused before anything lands, a
declared one (``data.source.encoding``) is read as text (issue #13, item 12)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydantic
import pytest

from mlcycle.data import chunks as chunks_module
from mlcycle.data import read_source
from mlcycle.data.build import raw_frame
from mlcycle.data.ingest import ingest
from mlcycle.data.landing import list_partitions
from mlcycle.errors import BadInput
from mlcycle.spec import Source
from mlcycle.store import Store

_N = 3000


def _text(n: int = _N) -> str:
    lines = ["id,origin,x"] + [f"{i},{'EWRé' if i % 3 == 0 else 'JFK'},{i / 10}" for i in range(n)]
    return "\n".join(lines) + "\n"


def _nothing_landed(store: Store) -> None:
    assert list_partitions(store, "main") == []
    raw = store.home / "raw"
    assert not raw.exists() or [p for p in raw.rglob("*.parquet")] == []


def test_latin1_csv_is_refused_with_line_and_byte_offset(store: Store, tmp_path: Path) -> None:
    data = _text().encode("latin-1")
    (tmp_path / "d.csv").write_bytes(data)
    with pytest.raises(BadInput) as caught:
        ingest(store, Source(path="d.csv"), tmp_path, id_column="id")
    err = caught.value
    offset = data.index(b"\xe9")
    assert "d.csv" in err.what and "not UTF-8 text" in err.what
    # The first 'é' is on line 2 (the header is line 1), at this byte of the file.
    assert f"line 2 (byte offset {offset})" in err.why and "0xe9" in err.why
    assert "encoding: latin-1" in err.fix and "nothing was landed" in err.fix
    assert err.exit_code == 2
    _nothing_landed(store)


def test_undecodable_bytes_after_the_first_block_are_an_encoding_error(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first blocks are clean UTF-8, so pyarrow types the column as text, and the
    # Latin-1 byte only turns up later: still an encoding error, not "changed type".
    monkeypatch.setattr(chunks_module, "_CSV_BLOCK", 4096)
    clean = "id,origin\n" + "".join(f"{i},JFK\n" for i in range(2000))
    data = clean.encode() + "2000,EWRé\n".encode("latin-1")
    (tmp_path / "d.csv").write_bytes(data)
    with pytest.raises(BadInput) as caught:
        ingest(store, Source(path="d.csv"), tmp_path, id_column="id", chunk_rows=100)
    assert "not UTF-8 text" in caught.value.what
    offset = data.index(b"\xe9")
    assert f"line 2002 (byte offset {offset})" in caught.value.why
    _nothing_landed(store)


@pytest.mark.parametrize(
    ("codec", "mark"), [("utf-16", "UTF-16 byte-order mark"), ("utf-16-le", "NUL byte")]
)
def test_utf16_csv_is_refused_naming_the_encoding(
    store: Store, tmp_path: Path, codec: str, mark: str
) -> None:
    (tmp_path / "d.csv").write_bytes(_text().encode(codec))
    with pytest.raises(BadInput) as caught:
        ingest(store, Source(path="d.csv"), tmp_path, id_column="id")
    err = caught.value
    assert "d.csv" in err.what and "not UTF-8 text" in err.what
    assert mark in err.why and "encoding: utf-16" in err.fix
    assert "malformed" not in err.what
    _nothing_landed(store)


@pytest.mark.parametrize("codec", ["latin-1", "utf-16", "cp1252"])
def test_a_declared_encoding_is_read_as_text(store: Store, tmp_path: Path, codec: str) -> None:
    (tmp_path / "d.csv").write_bytes(_text().encode(codec))
    src = Source(path="d.csv", encoding=codec)
    result = ingest(store, src, tmp_path, id_column="id")
    assert result.rows_new == _N
    _, df = raw_frame(store, src)
    assert sorted(df["origin"].unique()) == ["EWRé", "JFK"]
    # The pandas reader (monitoring's reference files) honours it too.
    assert read_source(src, tmp_path)["origin"].iloc[0] == "EWRé"


def test_a_wrong_declared_encoding_is_refused(store: Store, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(_text().encode("utf-8"))
    with pytest.raises(BadInput) as caught:
        ingest(store, Source(path="d.csv", encoding="ascii"), tmp_path, id_column="id")
    assert "not ASCII text" in caught.value.what and "line 2" in caught.value.why
    _nothing_landed(store)


def test_changing_the_declared_encoding_lands_the_file_again(store: Store, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(_text(10).encode("cp1252"))
    assert ingest(store, Source(path="d.csv", encoding="latin-1"), tmp_path).rows_new == 10
    again = ingest(store, Source(path="d.csv", encoding="cp1252"), tmp_path)
    assert again.rows_new == 10 and len(list_partitions(store, "main")) == 2


def test_read_source_refuses_latin1_with_its_position(tmp_path: Path) -> None:
    data = _text(5).encode("latin-1")
    (tmp_path / "d.csv").write_bytes(data)
    with pytest.raises(BadInput) as caught:
        read_source(Source(path="d.csv"), tmp_path)
    offset = data.index(b"\xe9")
    assert f"line 2 (byte offset {offset})" in caught.value.why


def test_an_unknown_encoding_is_a_spec_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown text encoding 'klingon'"):
        Source(path="d.csv", encoding="klingon")
    assert Source(path="d.csv").encoding == "utf-8"


def test_utf8_with_bom_still_reads(store: Store, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(_text(5).encode("utf-8-sig"))
    ingest(store, Source(path="d.csv"), tmp_path)
    _, df = raw_frame(store, Source(path="d.csv"))
    assert list(df.columns) == ["id", "origin", "x"]
    assert isinstance(df, pd.DataFrame)
