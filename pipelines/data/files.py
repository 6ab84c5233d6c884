"""The landing door: a person's file becomes a table by column name, or a named refusal.

Every file that enters the pipeline (the configured source, its lookups, a replayed batch) is
read here before any join or derivation touches it. A file that cannot become the table the
contract needs raises :class:`LandingError` with a named ``check`` and a cause a person can act
on -- "gzip-compressed", "`;`-delimited", "header case differs", "header only" -- instead of a
``KeyError`` from a merge three steps later. The quality gate turns that error into its usual
report and quarantines the file (:func:`pipelines.quality.gate.refuse_file`).

Columns are matched by name, never by position; the record count of a file that is not CSV text
is 0, never a count of newline bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.core.errors import InvalidInputError

#: The named checks of the door, with why each rule exists (quoted in the report).
CHECKS: dict[str, str] = {
    "file_exists": "a path that names no file is a failed extract or a typo, not an empty batch",
    "file_not_compressed": "compressed bytes under a plain CSV name are unreadable as text",
    "file_is_text": "a binary file is not a CSV export; reading it as text yields garbage rows",
    "file_is_utf8": "batches are UTF-8; other encodings silently corrupt categorical values",
    "file_not_empty": "an empty file is a failed extract, not a period without data",
    "csv_delimiter": "columns are split on commas; another delimiter leaves one unusable column",
    "header_case": "column names are case-sensitive; a renamed header must not match by accident",
    "header_unique": "two columns with one name make every rule on that name ambiguous",
    "columns_present": "every column the contract needs must be in the file, by name",
    "csv_rows_match_header": "short or long rows mean a truncated or garbled file",
    "file_has_rows": "a header without rows is a failed extract, not a period without data",
    "rows_in_batch": "rows of another period would be published under this batch's name",
}

_COMPRESSED = (
    (b"\x1f\x8b", "gzip-compressed", (".gz", ".gzip")),
    (b"PK\x03\x04", "zip-compressed", (".zip",)),
    (b"BZh", "bzip2-compressed", (".bz2",)),
    (b"\xfd7zXZ\x00", "xz-compressed", (".xz",)),
)
_DELIMITERS = {";": "`;`-delimited", "\t": "tab-delimited", "|": "`|`-delimited"}
_HEAD_BYTES = 1 << 16
_SHOWN = 8  # columns quoted in a message


class LandingError(InvalidInputError):
    """A file cannot be landed as the contract's table; final (the same bytes fail the same way).

    ``check`` is one of :data:`CHECKS`; ``file`` the offending file; ``rows_in`` its CSV records
    (0 when it is not CSV text); ``quarantine_file`` whether the file itself is the evidence to
    quarantine (False when the file is fine but holds no rows of the requested batch).
    """

    def __init__(
        self,
        check: str,
        message: str,
        *,
        file: Path | str,
        rows_in: int = 0,
        quarantine_file: bool = True,
    ) -> None:
        super().__init__(message)
        self.check = check
        self.file = Path(file)
        self.rows_in = rows_in
        self.quarantine_file = quarantine_file

    @property
    def why(self) -> str:
        return CHECKS.get(self.check, "")


@dataclass(frozen=True)
class Inspected:
    """A file that passed the byte-level checks: its header and, when not compressed, its text."""

    path: Path
    header: list[str]
    header_line: str
    text: str | None  # None for a file named as compressed (pandas decompresses it)


def _short(items: Sequence[str]) -> str:
    shown = ", ".join(repr(c) for c in items[:_SHOWN])
    return f"[{shown}{', ...' if len(items) > _SHOWN else ''}]"


def _decompressed_head(path: Path) -> bytes:
    name = path.name.lower()
    if name.endswith((".gz", ".gzip")):
        with gzip.open(path, "rb") as fh:
            return fh.read(_HEAD_BYTES)
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise LandingError(
                    "file_not_compressed",
                    f"{path.name} is a zip archive with {len(members)} files; one CSV is expected",
                    file=path,
                )
            with zf.open(members[0]) as fh:
                return fh.read(_HEAD_BYTES)
    raise ValueError(path.name)  # other compressions: read by pandas, inspected no further


def inspect(path: Path) -> Inspected:
    """The header of a CSV file, after refusing what is not UTF-8 CSV text, with a named cause.

    Raises:
        LandingError: missing, empty, compressed under a plain name, binary or not UTF-8.
    """
    if not path.is_file():
        raise LandingError("file_exists", f"{path} is not a file", file=path)
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    text: str | None = None
    for magic, what, suffixes in _COMPRESSED:
        if head.startswith(magic):
            if not path.name.lower().endswith(suffixes):
                raise LandingError(
                    "file_not_compressed",
                    f"{path.name} is {what} (starts with bytes {magic.hex(' ')}), not CSV text: "
                    f"decompress it, or name it {path.name}{suffixes[0]}",
                    file=path,
                )
            try:
                head = _decompressed_head(path)
            except ValueError:
                head = b""
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise LandingError(
                    "file_not_compressed", f"{path.name} is {what} but cannot be opened: {exc}", file=path
                ) from None
            break
    else:
        data = path.read_bytes()
        if not data.strip():
            raise LandingError("file_not_empty", f"{path.name} is empty ({len(data)} bytes)", file=path)
        if b"\x00" in data:
            at = data.index(b"\x00")
            raise LandingError(
                "file_is_text", f"{path.name} is binary (NUL byte at offset {at}), not CSV text", file=path
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            lineno = data.count(b"\n", 0, exc.start) + 1
            bad = data[exc.start : exc.start + 8]
            raise LandingError(
                "file_is_utf8",
                f"{path.name} is not UTF-8: byte {exc.start} (line {lineno}) is {bad!r} ({exc.reason})",
                file=path,
            ) from None
        text = text.removeprefix("\ufeff")
        head = text[:_HEAD_BYTES].encode()
    first = head.decode("utf-8", errors="replace").removeprefix("\ufeff").splitlines()
    line = first[0] if first else ""
    if not line.strip():
        raise LandingError("file_not_empty", f"{path.name} has no header line", file=path)
    header = next(csv.reader([line]))
    return Inspected(path, list(header), line, text)


def diagnose_columns(found: Inspected, required: Sequence[str], *, what: str = "") -> None:
    """Raise naming why ``required`` columns are not all in the header: delimiter, case, or absent.

    ``what`` names the expected layout in the message (e.g. "raw source layout").
    """
    header, name = found.header, found.path.name
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise LandingError(
            "header_unique", f"{name}: the header repeats columns {_short(dupes)}", file=found.path
        )
    missing = [c for c in required if c not in header]
    if not missing:
        return
    layout = f" ({what})" if what else ""
    comma_fields = len(header)
    best = max(_DELIMITERS, key=lambda d: len(found.header_line.split(d)))
    if len(found.header_line.split(best)) > max(comma_fields, 1) and comma_fields <= 2:
        fields = len(found.header_line.split(best))
        raise LandingError(
            "csv_delimiter",
            f"{name} is {_DELIMITERS[best]}, not comma-delimited: its header splits into {fields} "
            f"columns on {best!r} and {comma_fields} on ',' ({found.header_line[:80]!r}); "
            "re-export it with commas",
            file=found.path,
        )
    folded: dict[str, str] = {}
    for h in header:
        folded.setdefault(h.strip().casefold(), h)
    case = {c: folded[c.strip().casefold()] for c in missing if c.strip().casefold() in folded}
    if case:
        pairs = ", ".join(f"{got!r} for {want!r}" for want, got in list(case.items())[:_SHOWN])
        more = f" (+{len(case) - _SHOWN} more)" if len(case) > _SHOWN else ""
        raise LandingError(
            "header_case",
            f"{name}: header case differs from the contract{layout} in {len(case)} column(s): "
            f"{pairs}{more}; column names are case-sensitive",
            file=found.path,
        )
    raise LandingError(
        "columns_present",
        f"{name} lacks columns {_short(missing)}{layout} (its header: {_short(header)})",
        file=found.path,
    )


def records(found: Inspected) -> list[list[str]]:
    """The data records of an uncompressed file, each as wide as the header; refuses ragged or none.

    Raises:
        LandingError: rows cut short or split differently (truncated or garbled), or header only.
    """
    assert found.text is not None
    try:
        rows = list(csv.reader(io.StringIO(found.text, newline="")))
    except csv.Error as exc:
        raise LandingError(
            "csv_rows_match_header", f"{found.path.name} is not well-formed CSV: {exc}", file=found.path
        ) from None
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines
    body = rows[1:]
    width = len(rows[0]) if rows else 0
    bad = [i + 2 for i, r in enumerate(body) if len(r) != width]
    if bad:
        shown = ", ".join(f"line {n}: {len(body[n - 2])} fields" for n in bad[:5])
        raise LandingError(
            "csv_rows_match_header",
            f"{found.path.name}: {len(bad)} of {len(body)} records do not have the header's {width} "
            f"fields ({shown})",
            file=found.path,
            rows_in=len(body),
        )
    if not body:
        raise LandingError(
            "file_has_rows", f"{found.path.name} has a header but no data rows (header only)", file=found.path
        )
    return body


@dataclass(frozen=True)
class CsvScan:
    """What one streaming pass over a CSV's records found; no record is kept.

    Materialising the records (``list(csv.reader(...))``) costs ~20x the file's size in Python
    strings and lists: 6 GB for a 3M-row batch. A pass that keeps counts stays O(1).
    """

    header: tuple[str, ...]
    width: int  # fields in the header (0: no header)
    records: int  # data records, trailing blank lines excluded
    ragged: tuple[tuple[int, int], ...]  # (record line, fields) of the first records not as wide
    ragged_count: int


def scan_csv(lines: Iterable[str], keep: int = 5) -> CsvScan:
    """Count the data records and the ragged ones, with the rules :func:`records` applies.

    ``lines`` is a text file opened with ``newline=""`` (or any iterable of lines). Blank
    records at the end are not records; blank ones before a data record count as ragged.
    A record's line is its position + 1 after the header (a landed file never splits one).

    Raises:
        csv.Error: the text cannot be tokenised as CSV.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return CsvScan((), 0, 0, (), 0)
    width, n, ragged_count = len(header), 0, 0
    ragged: list[tuple[int, int]] = []
    pending: list[tuple[int, int]] = []  # blank records not yet known to be trailing

    def flag(line: int, fields: int) -> None:
        nonlocal ragged_count
        if fields != width:
            ragged_count += 1
            if len(ragged) < keep:
                ragged.append((line, fields))

    for row in reader:
        n += 1
        if not any(cell.strip() for cell in row):
            pending.append((n + 1, len(row)))
            continue
        for line, fields in pending:
            flag(line, fields)
        pending.clear()
        flag(n + 1, len(row))
    if not any(cell.strip() for cell in header) and n == len(pending):
        return CsvScan((), 0, 0, (), 0)  # nothing but blank lines
    return CsvScan(tuple(header), width, n - len(pending), tuple(ragged), ragged_count)


def count_records(path: Path) -> int:
    """CSV data records in a file, or 0 when it is not readable CSV text (never a newline count)."""
    try:
        found = inspect(path)
    except (LandingError, OSError):
        return 0
    if found.text is None:
        try:
            return sum(len(chunk) for chunk in pd.read_csv(path, dtype=str, chunksize=200_000))
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError):
            return 0
    del found  # its text is a copy of the file; the scan streams from disk instead
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return scan_csv(fh).records
    except (csv.Error, UnicodeDecodeError, OSError):
        return 0


def read_table(path: Path, required: Sequence[str], *, what: str = "") -> pd.DataFrame:
    """The CSV at ``path`` with every ``required`` column present (by name, in any order).

    Types are inferred as pandas always has for the source (numbers stay numbers).

    Raises:
        LandingError: unreadable, mis-delimited, wrong header, ragged rows, or header only.
    """
    found = inspect(path)
    diagnose_columns(found, required, what=what)
    if found.text is not None:
        records(found)  # ragged rows and header-only files are named, not padded with nulls
    source: Path | io.StringIO = io.StringIO(found.text) if found.text is not None else path
    try:
        df = pd.read_csv(source, low_memory=False)
    except UnicodeDecodeError as exc:
        raise LandingError("file_is_utf8", f"{path.name} is not UTF-8: {exc}", file=path) from None
    except (pd.errors.ParserError, csv.Error, ValueError, OSError, EOFError) as exc:
        raise LandingError(
            "csv_rows_match_header", f"{path.name} is not well-formed CSV: {exc}", file=path
        ) from None
    if df.empty:
        raise LandingError(
            "file_has_rows", f"{path.name} has a header but no data rows (header only)", file=path
        )
    return df
