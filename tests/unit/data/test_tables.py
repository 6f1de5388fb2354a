"""Reading tables from dataset versions: suffixes, CSV/TSV/Parquet, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loopml.data.tables import is_table, read_table
from loopml.errors import InvalidInput, NotFound


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.csv", True), ("b/c.TSV", True), ("d.parquet", True), ("e.pq", True), ("f.json", False)],
)
def test_table_suffixes(name: str, expected: bool) -> None:
    assert is_table(name) is expected
    assert is_table(Path(name)) is expected


def test_reads_csv_tsv_and_parquet(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    df.to_parquet(tmp_path / "t.parquet")

    for name in ("t.csv", "t.tsv", "t.parquet"):
        read = read_table(tmp_path / name)
        assert read["a"].tolist() == [1, 2] and read["b"].tolist() == ["x", "y"]


def test_malformed_csv_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")

    with pytest.raises(InvalidInput, match=r"churn@v2:data/x\.csv is not valid CSV.*line 3"):
        read_table(path, label="churn@v2:data/x.csv")


def test_empty_and_non_utf8_csv_say_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name\nJos\u00e9\n".encode("latin-1"))

    with pytest.raises(InvalidInput, match=r"empty\.csv is empty.*header"):
        read_table(empty)
    with pytest.raises(InvalidInput, match=r"latin\.csv is not UTF-8.*re-save it as UTF-8"):
        read_table(latin)


def test_unreadable_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")

    with pytest.raises(InvalidInput, match=r"broken\.parquet is not a readable Parquet file"):
        read_table(path)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"gone\.csv"):
        read_table(tmp_path / "gone.csv")
    with pytest.raises(InvalidInput, match=r"notes\.txt is not a table"):
        read_table(tmp_path / "notes.txt")
