"""Tables inside dataset versions: which files are tables, and reading one into a DataFrame.

CSV, TSV and Parquet files are tables; LoopML profiles them at add time and validates them
later. Reading errors become `InvalidInput` naming the file, what is wrong and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from loopml.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
_TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t"}


def is_table(path: str | Path) -> bool:
    """Return True if the file's suffix marks a table LoopML can profile (CSV, TSV, Parquet)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def read_table(path: Path, *, label: str | None = None) -> pd.DataFrame:
    """Return the table at `path` as a DataFrame; `label` names it in errors (churn@v2:x.csv)."""
    name = label or str(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InvalidInput(
            f"{name} is not a table: LoopML reads {', '.join(TABLE_SUFFIXES)} files; "
            "rename it with one of those suffixes if it holds one"
        )
    if not path.is_file():
        raise NotFound(f"table {name} does not exist at {path}; check the path")
    if suffix in _TEXT_SUFFIXES:
        return _read_text(path, name, _TEXT_SUFFIXES[suffix])
    return _read_parquet(path, name)


def _read_text(path: Path, name: str, sep: str) -> pd.DataFrame:
    import pandas as pd

    kind = "CSV" if sep == "," else "TSV"
    try:
        # low_memory=False parses each column in one pass, so a column never gets mixed
        # types from chunking (pandas' DtypeWarning).
        return pd.read_csv(path, sep=sep, low_memory=False)
    except pd.errors.EmptyDataError:
        raise InvalidInput(
            f"{name} is empty: a {kind} table needs at least a header line; "
            "write the column names on the first line"
        ) from None
    except pd.errors.ParserError as exc:
        problem = " ".join(str(exc).split())  # pandas ends its message with a line break
        raise InvalidInput(
            f"{name} is not valid {kind}: {problem}; fix that line (quote values holding "
            f"{'commas' if sep == ',' else 'tabs'} or line breaks) and add the file again"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start} of a chunk, "
            f"byte value {exc.object[exc.start : exc.start + 1]!r}); re-save it as UTF-8"
        ) from None


def _read_parquet(path: Path, name: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    # pyarrow's errors subclass these builtins (ArrowInvalid is a ValueError, ArrowIOError an
    # OSError, ArrowNotImplementedError a NotImplementedError for types it cannot convert).
    except (ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise InvalidInput(
            f"{name} is not a readable Parquet file ({exc}); write it again with "
            "pandas.DataFrame.to_parquet or pyarrow.parquet.write_table"
        ) from None


__all__ = ["TABLE_SUFFIXES", "is_table", "read_table"]
