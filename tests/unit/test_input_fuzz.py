"""The gateway's input parser and label checks under fuzzing (hypothesis, bounded and seeded).

The property: for *any* bytes, the scoring parser and validator, the label parser and the
streaming body reader either return a result or raise :class:`BadInputError` with a 4xx status
and a non-empty message; never another exception (which the HTTP layer would turn into a 500).
A few named properties pin the costly cases: row limits refuse while reading, numbers no model
can take are refused with their column, lone surrogates never pass.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from pipelines.serving.inputs import (
    BadInputError,
    check_media_type,
    count_containers,
    parse_body,
    read_limited,
    validate,
)
from pipelines.serving.models import ColumnSpec

pytestmark = pytest.mark.edges

COLUMNS = [
    ColumnSpec("distance", "float", nullable=False),
    ColumnSpec("hour", "int", nullable=False),
    ColumnSpec("carrier", "str"),
    ColumnSpec("night", "bool"),
]
POSITIONAL = [c.name for c in COLUMNS]
ID, TIME = "flight_id", "time_hour"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _score(body: bytes) -> None:
    """Everything the gateway does with a scoring body before the model."""
    table = parse_body(body, 50, POSITIONAL, id_column=ID, time_column=TIME, max_id_chars=64)
    validate(table, COLUMNS, passthrough={ID, TIME}, allow_extra=False)


def _assert_clean(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BadInputError as exc:
        assert 400 <= exc.status_code < 500 and exc.message


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
column_names = st.sampled_from([*POSITIONAL, ID, TIME, "colour"])
records = st.lists(st.dictionaries(column_names, json_values, max_size=6), max_size=6)
payloads = st.one_of(
    records.map(lambda r: {"dataframe_records": r}),
    records.map(lambda r: {"instances": r}),
    st.lists(st.lists(json_values, max_size=5), max_size=5).map(
        lambda rows: {"dataframe_split": {"columns": POSITIONAL, "data": rows}}
    ),
    st.dictionaries(column_names, st.lists(json_values, max_size=5), max_size=5).map(lambda c: {"inputs": c}),
    st.dictionaries(st.text(max_size=10), json_values, max_size=3),
)
# Literals json.dumps never writes: what a hostile client types.
literals = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e309",
        "-1e400",
        "1" * 400,
        "1" * 5000,
        '"\\udcff"',
        '"\\ud800x"',
        "[]",
        "{}",
    ]
)


@seed(13)
@FUZZ
@given(payloads)
def test_any_structured_payload_is_answered_or_refused_with_a_4xx(payload: Any) -> None:
    _assert_clean(_score, json.dumps(payload).encode())


@seed(13)
@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_are_answered_or_refused_with_a_4xx(body: bytes) -> None:
    _assert_clean(_score, body)


@seed(13)
@FUZZ
@given(st.sampled_from([*POSITIONAL, ID, TIME]), literals)
def test_hostile_literals_in_any_column_are_refused_naming_the_column(column: str, literal: str) -> None:
    row = {
        "distance": 1.5,
        "hour": 3,
        "carrier": "UA",
        "night": False,
        ID: "f1",
        TIME: "2013-01-01T05:00:00Z",
    }
    text = json.dumps({"dataframe_records": [row]})
    old = json.dumps(row[column])
    body = text.replace(f'"{column}": {old}', f'"{column}": {literal}').encode()
    try:
        _score(body)
    except BadInputError as exc:
        assert 400 <= exc.status_code < 500
        if literal not in ("NaN", "[]", "{}"):  # NaN is "missing" in MLflow's protocol
            assert repr(column) in exc.message, exc.message
    else:
        # Accepted only where the value is legal: NaN in a nullable column.
        assert literal == "NaN" and column in ("carrier", "night")


label_records = st.lists(
    st.dictionaries(
        st.sampled_from(["entity_id", "label", "event_time", "available_at", "extra"]),
        json_values,
        max_size=5,
    ),
    max_size=5,
)


@pytest.fixture(scope="module")
def app_settings() -> Any:
    from pipelines.config import load_settings

    return load_settings()


@seed(13)
@FUZZ
@given(label_records | json_values)
def test_labels_parser_never_raises_anything_but_a_4xx(app_settings: Any, records: Any) -> None:
    from pipelines.serving.labels import parse_labels

    _assert_clean(parse_labels, json.dumps({"labels": records}).encode(), app_settings)


def _stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    return gen()


def _read(chunks: list[bytes], max_bytes: int = 10_000, max_containers: int = 20) -> bytes:
    return asyncio.run(
        read_limited(
            _stream(chunks),
            declared_length=None,
            max_bytes=max_bytes,
            max_containers=max_containers,
            limit_name="test",
        )
    )


@seed(13)
@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_body_reader_returns_the_bytes_or_a_413(chunks: list[bytes]) -> None:
    try:
        assert _read(chunks, max_bytes=600, max_containers=10) == b"".join(chunks)
    except BadInputError as exc:
        assert exc.status_code == 413


def test_rows_are_refused_while_reading_not_after_the_whole_body() -> None:
    sent = []

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"instances": ['
        for _ in range(100_000):
            sent.append(1)
            yield b"[]," * 100

    with pytest.raises(BadInputError) as err:
        asyncio.run(
            read_limited(
                endless(), declared_length=None, max_bytes=10**9, max_containers=5008, limit_name="rows"
            )
        )
    assert err.value.status_code == 413 and "5008" in err.value.message
    assert len(sent) < 200  # stopped after ~5,000 rows, not 10 million


def test_brackets_inside_strings_are_not_rows() -> None:
    body = json.dumps({"dataframe_records": [{"carrier": "[[[{{{" * 50}]}).encode()
    assert count_containers(body) == 3
    assert _read([body[i : i + 7] for i in range(0, len(body), 7)], max_containers=5) == body


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/json; charset=latin-1", False),
        ("text/x-notjson", False),
        ("application/jsonp", False),
        ("text/csv", False),
        ("", False),
        (None, False),
    ],
)
def test_media_type_is_exact(header: str | None, ok: bool) -> None:
    if ok:
        check_media_type(header)
    else:
        with pytest.raises(BadInputError) as err:
            check_media_type(header)
        assert err.value.status_code == 415
