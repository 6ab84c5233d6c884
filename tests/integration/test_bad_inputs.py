"""The corpus of named bad inputs against a real gateway process, and its OpenAPI fuzzed.

One table (:data:`CASES`): each row names a bad input (method, path, headers, body) and the
status and message fragment the gateway must answer with. Each case runs against a real
``python -m pipelines.serving`` process (its own runtime root, the shared test registry's
champion) and also asserts that the process stays up (a good scoring request succeeds right
after) and that its memory stays bounded (resident set within :data:`RSS_BOUND_MB` of what it
was after warm-up).

Then :func:`test_openapi_fuzz_never_gets_a_5xx` lets schemathesis generate requests from the
gateway's own ``/openapi.json`` (with both tokens, so bodies get past authentication) against
a second process, bounded and seeded, and requires 0 answers >= 500.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.gateway_process import GatewayProcess, running_gateway
from support.serving import LABELS_TOKEN, TOKEN, World, build_world

from pipelines.serving.launcher import free_port

pytestmark = [pytest.mark.edges, pytest.mark.filterwarnings("ignore:X does not have valid feature names")]

PORTS = (18320, 18339)
RSS_BOUND_MB = 120.0
JSON_CT = {"content-type": "application/json"}
ADMIN = {"authorization": f"Bearer {TOKEN}", **JSON_CT}
LABELS = {"authorization": f"Bearer {LABELS_TOKEN}", **JSON_CT}
ID, TIME = "flight_id", "time_hour"
LIT = "__LITERAL__"

Body = bytes | Callable[[dict[str, Any]], bytes] | None


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    headers: dict[str, Any]
    body: Body
    status: int
    message: str
    stream: bool = field(default=False)  # send the body chunked, without a Content-Length


# --------------------------------------------------------------------------- body builders
def rec(**changes: Any) -> Callable[[dict[str, Any]], bytes]:
    """One good record with ``changes`` (a value of ``DROP`` removes the column)."""

    def build(row: dict[str, Any]) -> bytes:
        r = dict(row)
        for k, v in changes.items():
            if v is DROP:
                r.pop(k, None)
            else:
                r[k] = v
        return json.dumps({"dataframe_records": [r]}).encode()

    return build


DROP = object()


def lit(column: str, literal: str) -> Callable[[dict[str, Any]], bytes]:
    """One good record whose ``column`` holds a raw JSON literal (what json.dumps never writes)."""

    def build(row: dict[str, Any]) -> bytes:
        text = json.dumps({"dataframe_records": [{**row, column: LIT}]})
        return text.replace(json.dumps(LIT), literal).encode()

    return build


def many(n: int) -> Callable[[dict[str, Any]], bytes]:
    return lambda row: json.dumps({"dataframe_records": [row] * n}).encode()


def label(entity: Any = "e-1", value: Any = 1, **extra: Any) -> bytes:
    return json.dumps({"labels": [{"entity_id": entity, "label": value, **extra}]}).encode()


def label_lit(literal: str, where: str = "label") -> bytes:
    rec_ = {"entity_id": "e-1", "label": 1, where: LIT}
    return json.dumps({"labels": [rec_]}).replace(json.dumps(LIT), literal).encode()


def admin_lit(key: str, literal: str, **others: Any) -> bytes:
    return json.dumps({**others, key: LIT}).replace(json.dumps(LIT), literal).encode()


MAX_BODY = 5_000_000
MAX_ROWS = 5000
INV, LAB = "/invocations", "/labels"

CASES: list[Case] = [
    # ---- media types (exact, before reading)
    Case(
        "ctype_not_json_but_contains_json",
        "POST",
        INV,
        {"content-type": "text/x-notjson"},
        rec(),
        415,
        "unsupported content type",
    ),
    Case("ctype_missing", "POST", INV, {}, rec(), 415, "missing Content-Type"),
    Case("ctype_csv", "POST", INV, {"content-type": "text/csv"}, b"a,b\n1,2", 415, "send application/json"),
    Case(
        "ctype_jsonp",
        "POST",
        INV,
        {"content-type": "application/jsonp"},
        rec(),
        415,
        "unsupported content type",
    ),
    Case(
        "ctype_form",
        "POST",
        INV,
        {"content-type": "application/x-www-form-urlencoded"},
        b"a=1",
        415,
        "unsupported content type",
    ),
    Case(
        "ctype_latin1_charset",
        "POST",
        INV,
        {"content-type": "application/json; charset=latin-1"},
        rec(),
        415,
        "unsupported charset",
    ),
    # ---- body shape
    Case("malformed_json", "POST", INV, JSON_CT, b'{"dataframe_records": [', 400, "malformed JSON"),
    Case("empty_body", "POST", INV, JSON_CT, b"", 400, "empty request body"),
    Case("whitespace_body", "POST", INV, JSON_CT, b" \n\t ", 400, "empty request body"),
    Case("invalid_utf8", "POST", INV, JSON_CT, b'{"instances": ["\xff\xfe"]}', 400, "malformed JSON"),
    Case("top_level_list", "POST", INV, JSON_CT, b"[1, 2]", 400, "JSON object"),
    Case("top_level_string", "POST", INV, JSON_CT, b'"hello"', 400, "JSON object"),
    Case("unknown_format", "POST", INV, JSON_CT, b'{"rows": []}', 400, "expected exactly one of"),
    Case(
        "two_formats",
        "POST",
        INV,
        JSON_CT,
        b'{"instances": [], "inputs": {}}',
        400,
        "expected exactly one of",
    ),
    Case("empty_records", "POST", INV, JSON_CT, b'{"dataframe_records": []}', 400, "no rows"),
    Case(
        "records_not_a_list",
        "POST",
        INV,
        JSON_CT,
        b'{"dataframe_records": {"a": 1}}',
        400,
        "must be a list of records",
    ),
    Case("record_not_an_object", "POST", INV, JSON_CT, b'{"dataframe_records": [1]}', 400, "record 0"),
    Case(
        "split_ragged",
        "POST",
        INV,
        JSON_CT,
        b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}',
        400,
        "row 0",
    ),
    Case(
        "split_without_data",
        "POST",
        INV,
        JSON_CT,
        b'{"dataframe_split": {"columns": ["a"]}}',
        400,
        "must be an object with 'columns' and 'data'",
    ),
    Case(
        "split_columns_not_names",
        "POST",
        INV,
        JSON_CT,
        b'{"dataframe_split": {"columns": [1], "data": []}}',
        400,
        "list of column names",
    ),
    Case(
        "split_duplicate_columns",
        "POST",
        INV,
        JSON_CT,
        b'{"dataframe_split": {"columns": ["a", "a"], "data": []}}',
        400,
        "more than once",
    ),
    Case(
        "instances_mixed_rows",
        "POST",
        INV,
        JSON_CT,
        b'{"instances": [[1], {"a": 1}]}',
        400,
        "all be objects or all be lists",
    ),
    Case(
        "instances_positional_short",
        "POST",
        INV,
        JSON_CT,
        b'{"instances": [[1, 2]]}',
        400,
        "positional rows need",
    ),
    Case(
        "inputs_ragged_columns",
        "POST",
        INV,
        JSON_CT,
        b'{"inputs": {"a": [1], "b": [1, 2]}}',
        400,
        "different lengths",
    ),
    Case(
        "inputs_column_not_a_list",
        "POST",
        INV,
        JSON_CT,
        b'{"inputs": {"a": 1}}',
        400,
        "must be a list of values",
    ),
    Case(
        "deep_nesting_3000",
        "POST",
        INV,
        JSON_CT,
        b'{"instances": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        400,
        "malformed JSON",
    ),
    # ---- column values
    Case(
        "string_for_number",
        "POST",
        INV,
        JSON_CT,
        rec(distance="far"),
        400,
        "column 'distance': expected a number",
    ),
    Case(
        "object_for_number",
        "POST",
        INV,
        JSON_CT,
        rec(distance={"a": 1}),
        400,
        "column 'distance': expected a number",
    ),
    Case("bool_for_number", "POST", INV, JSON_CT, rec(hour=True), 400, "column 'hour': expected a number"),
    Case(
        "missing_required_column",
        "POST",
        INV,
        JSON_CT,
        rec(carrier=DROP),
        400,
        "missing required column(s) ['carrier']",
    ),
    Case("unknown_column", "POST", INV, JSON_CT, rec(colour="red"), 400, "unknown column(s) ['colour']"),
    Case("null_in_required", "POST", INV, JSON_CT, rec(dest=None), 400, "column 'dest': null in row 0"),
    Case(
        "nan_in_required",
        "POST",
        INV,
        JSON_CT,
        lit("distance", "NaN"),
        400,
        "column 'distance': NaN in row 0",
    ),
    Case(
        "infinity",
        "POST",
        INV,
        JSON_CT,
        lit("temp", "Infinity"),
        400,
        "column 'temp': Infinity (infinite values are refused)",
    ),
    Case("minus_infinity", "POST", INV, JSON_CT, lit("temp", "-Infinity"), 400, "column 'temp': -Infinity"),
    Case(
        "overflow_1e309",
        "POST",
        INV,
        JSON_CT,
        lit("temp", "1e309"),
        400,
        "column 'temp': a number beyond the 64-bit float range",
    ),
    Case(
        "overflow_long_float",
        "POST",
        INV,
        JSON_CT,
        lit("temp", "9" * 400 + ".5"),
        400,
        "column 'temp': a number beyond",
    ),
    Case(
        "integer_400_digits",
        "POST",
        INV,
        JSON_CT,
        lit("distance", "1" * 400),
        400,
        "column 'distance': a 400-digit integer",
    ),
    Case(
        "integer_5000_digits",
        "POST",
        INV,
        JSON_CT,
        lit("distance", "7" * 5000),
        400,
        "column 'distance': a 5000-digit integer",
    ),
    Case(
        "lone_surrogate_in_category",
        "POST",
        INV,
        JSON_CT,
        lit("carrier", '"\\udcff"'),
        400,
        "column 'carrier': a lone surrogate",
    ),
    Case(
        "lone_surrogate_in_id",
        "POST",
        INV,
        JSON_CT,
        lit(ID, '"ab\\ud800"'),
        400,
        f"column '{ID}': a lone surrogate",
    ),
    Case(
        "id_too_long", "POST", INV, JSON_CT, rec(**{ID: "x" * 300}), 400, "300 characters (the limit is 256)"
    ),
    Case("id_control_character", "POST", INV, JSON_CT, rec(**{ID: "a\u0000b"}), 400, "control character"),
    Case(
        "id_as_list",
        "POST",
        INV,
        JSON_CT,
        rec(**{ID: ["a"]}),
        400,
        f"column '{ID}' (the entity id): expected a string or integer, got list",
    ),
    Case(
        "id_as_float", "POST", INV, JSON_CT, rec(**{ID: 1.5}), 400, "expected a string or integer, got float"
    ),
    Case(
        "event_time_as_list",
        "POST",
        INV,
        JSON_CT,
        rec(**{TIME: ["2013-05-01"]}),
        400,
        f"column '{TIME}' (the event time): expected an ISO-8601 string, got list",
    ),
    Case(
        "event_time_as_number",
        "POST",
        INV,
        JSON_CT,
        rec(**{TIME: 1367366400}),
        400,
        "expected an ISO-8601 string, got int",
    ),
    Case(
        "event_time_not_a_time",
        "POST",
        INV,
        JSON_CT,
        rec(**{TIME: "yesterday"}),
        400,
        "is not an ISO-8601 timestamp",
    ),
    Case(
        "event_time_too_long",
        "POST",
        INV,
        JSON_CT,
        rec(**{TIME: "2013-05-01" + " " * 300}),
        400,
        "characters (the limit is 256)",
    ),
    # ---- sizes, refused while reading
    Case("rows_over_limit", "POST", INV, JSON_CT, many(MAX_ROWS + 1), 413, f"the limit is {MAX_ROWS}"),
    Case(
        "million_empty_rows",
        "POST",
        INV,
        JSON_CT,
        b'{"instances": [' + b"[]," * 1_000_000 + b"[]]}",
        413,
        "JSON rows/objects",
    ),
    Case(
        "million_empty_rows_chunked",
        "POST",
        INV,
        JSON_CT,
        b'{"instances": [' + b"{}," * 1_000_000 + b"{}]}",
        413,
        "JSON rows/objects",
        stream=True,
    ),
    Case("deep_nesting_100k", "POST", INV, JSON_CT, b"[" * 100_000, 413, "JSON rows/objects"),
    Case(
        "columnar_rows_over_limit",
        "POST",
        INV,
        JSON_CT,
        json.dumps({"inputs": {"distance": [1.0] * 6000}}).encode(),
        413,
        f"the limit is {MAX_ROWS}",
    ),
    Case("body_over_limit", "POST", INV, JSON_CT, b" " * (MAX_BODY + 10), 413, "serving.max_body_bytes"),
    Case(
        "body_over_limit_chunked",
        "POST",
        INV,
        JSON_CT,
        b" " * (MAX_BODY + 10),
        413,
        "serving.max_body_bytes",
        stream=True,
    ),
    # ---- labels: who
    Case("labels_without_token", "POST", LAB, JSON_CT, label(), 401, "missing or wrong bearer token"),
    Case("labels_with_admin_token", "POST", LAB, ADMIN, label(), 401, "missing or wrong bearer token"),
    Case(
        "labels_basic_auth",
        "POST",
        LAB,
        {"authorization": f"Basic {LABELS_TOKEN}", **JSON_CT},
        label(),
        401,
        "bearer token",
    ),
    Case(
        "labels_non_ascii_token",
        "POST",
        LAB,
        {"authorization": b"Bearer caf\xc3\xa9\xff", **JSON_CT},
        label(),
        401,
        "bearer token",
    ),
    Case("labels_auth_before_body", "POST", LAB, JSON_CT, b" " * (MAX_BODY + 10), 401, "bearer token"),
    # ---- labels: what
    Case(
        "labels_ctype_text",
        "POST",
        LAB,
        {**LABELS, "content-type": "text/plain"},
        label(),
        415,
        "unsupported content type",
    ),
    Case("labels_malformed", "POST", LAB, LABELS, b'{"labels": [', 400, "malformed JSON"),
    Case("labels_not_an_object", "POST", LAB, LABELS, b"[]", 400, 'one key "labels"'),
    Case("labels_empty_list", "POST", LAB, LABELS, b'{"labels": []}', 400, "non-empty list"),
    Case("labels_record_not_object", "POST", LAB, LABELS, b'{"labels": [1]}', 400, "labels[0] is a int"),
    Case(
        "labels_missing_id",
        "POST",
        LAB,
        LABELS,
        b'{"labels": [{"label": 1}]}',
        400,
        "labels[0].entity_id: expected a non-empty string",
    ),
    Case("labels_empty_id", "POST", LAB, LABELS, label(entity=""), 400, "non-empty string"),
    Case(
        "labels_binary_target_7_5",
        "POST",
        LAB,
        LABELS,
        label(value=7.5),
        400,
        "7.5 is not 0 or 1 (binary target)",
    ),
    Case("labels_negative", "POST", LAB, LABELS, label(value=-1), 400, "is not 0 or 1"),
    Case(
        "labels_string_label",
        "POST",
        LAB,
        LABELS,
        label(value="1"),
        400,
        "expected 0 or 1 (binary target), got str",
    ),
    Case("labels_bool_label", "POST", LAB, LABELS, label(value=True), 400, "got bool"),
    Case("labels_null_label", "POST", LAB, LABELS, label(value=None), 400, "got null"),
    Case("labels_nan", "POST", LAB, LABELS, label_lit("NaN"), 400, "labels[0].label: nan is not finite"),
    Case(
        "labels_infinity",
        "POST",
        LAB,
        LABELS,
        label_lit("Infinity"),
        400,
        "labels[0].label: Infinity (infinite values are refused)",
    ),
    Case(
        "labels_1e309",
        "POST",
        LAB,
        LABELS,
        label_lit("1e309"),
        400,
        "labels[0].label: a number beyond the 64-bit float range",
    ),
    Case(
        "labels_400_digit_label",
        "POST",
        LAB,
        LABELS,
        label_lit("1" * 400),
        400,
        "a 400-digit integer literal",
    ),
    Case(
        "labels_lone_surrogate_id",
        "POST",
        LAB,
        LABELS,
        label_lit('"\\udcff"', "entity_id"),
        400,
        "labels[0].entity_id: a lone surrogate",
    ),
    Case(
        "labels_id_too_long",
        "POST",
        LAB,
        LABELS,
        label(entity="x" * 300),
        400,
        "300 characters (the limit is 256)",
    ),
    Case("labels_id_control_char", "POST", LAB, LABELS, label(entity="a\nb"), 400, "control character"),
    Case("labels_id_as_list", "POST", LAB, LABELS, label(entity=["a"]), 400, "got list"),
    Case(
        "labels_id_of_50_mb",
        "POST",
        LAB,
        LABELS,
        label(entity="x" * 50_000_000),
        413,
        "serving.max_body_bytes",
    ),
    Case("labels_unknown_field", "POST", LAB, LABELS, label(weight=3), 400, "unknown field(s) ['weight']"),
    Case(
        "labels_event_time_garbage",
        "POST",
        LAB,
        LABELS,
        label(event_time="soon"),
        400,
        "labels[0].event_time",
    ),
    Case(
        "labels_event_time_list",
        "POST",
        LAB,
        LABELS,
        label(available_at=[1]),
        400,
        "labels[0].available_at: expected an ISO-8601 string",
    ),
    Case(
        "labels_too_many_records",
        "POST",
        LAB,
        LABELS,
        json.dumps({"labels": [{"entity_id": "e", "label": 0}] * 10_001}).encode(),
        413,
        "serving.labels_max_records",
    ),
    Case(
        "labels_million_objects",
        "POST",
        LAB,
        LABELS,
        b'{"labels": [' + b"{}," * 1_000_000 + b"{}]}",
        413,
        "JSON rows/objects",
    ),
    # ---- admin: who (before the body)
    Case(
        "admin_without_token",
        "POST",
        "/admin/weight",
        JSON_CT,
        b'{"weight": 5}',
        401,
        "missing or wrong bearer token",
    ),
    Case(
        "admin_wrong_token",
        "POST",
        "/admin/weight",
        {"authorization": "Bearer nope", **JSON_CT},
        b'{"weight": 5}',
        401,
        "bearer token",
    ),
    Case("admin_with_labels_token", "POST", "/admin/rollback", LABELS, b"{}", 401, "bearer token"),
    Case(
        "admin_non_ascii_token",
        "POST",
        "/admin/weight",
        {"authorization": b"Bearer \xff\xfe\xe9", **JSON_CT},
        b'{"weight": 5}',
        401,
        "bearer token",
    ),
    Case(
        "admin_auth_before_body",
        "POST",
        "/admin/canary",
        JSON_CT,
        b" " * (MAX_BODY + 10),
        401,
        "bearer token",
    ),
    Case("admin_state_without_token", "GET", "/admin/state", {}, None, 401, "bearer token"),
    # ---- admin: what
    Case(
        "canary_weight_nan",
        "POST",
        "/admin/canary",
        ADMIN,
        admin_lit("weight", "NaN", version="2"),
        422,
        "weight: Input should be a finite number",
    ),
    Case(
        "canary_weight_infinity",
        "POST",
        "/admin/canary",
        ADMIN,
        admin_lit("weight", "Infinity", version="2"),
        422,
        "weight: Input should be a finite number",
    ),
    Case(
        "canary_weight_1e309",
        "POST",
        "/admin/canary",
        ADMIN,
        admin_lit("weight", "1e309", version="2"),
        422,
        "weight: Input should be a finite number",
    ),
    Case(
        "weight_nan",
        "POST",
        "/admin/weight",
        ADMIN,
        admin_lit("weight", "NaN"),
        422,
        "weight: Input should be a finite number",
    ),
    Case(
        "weight_negative",
        "POST",
        "/admin/weight",
        ADMIN,
        b'{"weight": -1}',
        422,
        "weight: Input should be greater than or equal to 0",
    ),
    Case(
        "weight_over_100",
        "POST",
        "/admin/weight",
        ADMIN,
        b'{"weight": 101}',
        422,
        "less than or equal to 100",
    ),
    Case(
        "weight_as_text",
        "POST",
        "/admin/weight",
        ADMIN,
        b'{"weight": "high"}',
        422,
        "weight: Input should be a valid number",
    ),
    Case("weight_400_digits", "POST", "/admin/weight", ADMIN, admin_lit("weight", "9" * 400), 422, "weight:"),
    Case(
        "canary_without_version",
        "POST",
        "/admin/canary",
        ADMIN,
        b'{"weight": 5}',
        422,
        "version: Field required",
    ),
    Case(
        "canary_version_too_long",
        "POST",
        "/admin/canary",
        ADMIN,
        json.dumps({"version": "9" * 100, "weight": 5}).encode(),
        422,
        "version: String should have at most 64 characters",
    ),
    Case(
        "admin_unknown_field",
        "POST",
        "/admin/rollback",
        ADMIN,
        b'{"reason": "x", "force": true}',
        422,
        "force: Extra inputs are not permitted",
    ),
    Case(
        "admin_lone_surrogate_reason",
        "POST",
        "/admin/rollback",
        ADMIN,
        b'{"reason": "\\udcff"}',
        422,
        "surrogate",
    ),
    Case("admin_malformed_json", "POST", "/admin/rollback", ADMIN, b'{"reason": ', 422, "Invalid JSON"),
    Case(
        "admin_ctype_text",
        "POST",
        "/admin/rollback",
        {**ADMIN, "content-type": "text/plain"},
        b"{}",
        415,
        "unsupported content type",
    ),
    Case("admin_body_over_limit", "POST", "/admin/promote", ADMIN, b" " * 1_000_010, 413, "admin body limit"),
    Case("weight_without_canary", "POST", "/admin/weight", ADMIN, b'{"weight": 5}', 409, "no canary is set"),
    Case(
        "canary_unknown_version",
        "POST",
        "/admin/canary",
        ADMIN,
        b'{"version": "98765", "weight": 5}',
        422,
        "98765",
    ),
    # ---- routes
    Case("unknown_path", "GET", "/nope", {}, None, 404, "Not Found"),
    Case("get_invocations", "GET", INV, {}, None, 405, "Method Not Allowed"),
    Case("put_labels", "PUT", LAB, LABELS, label(), 405, "Method Not Allowed"),
]


# --------------------------------------------------------------------------- the gateway process
@pytest.fixture(scope="module")
def world(session_root: Path, settings: Any, published_batches: list[dict[str, Any]]) -> World:
    return build_world(session_root, settings, published_batches)


def _start(world: World, root: Path) -> Iterator[tuple[GatewayProcess, Any]]:
    with running_gateway(world, root, free_port(*PORTS), MLOPS_LABELS_TOKEN=LABELS_TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(world: World, session_root: Path) -> Iterator[tuple[GatewayProcess, Any]]:
    yield from _start(world, session_root / "bad-inputs")


@pytest.fixture(scope="module")
def good_row(gateway: tuple[GatewayProcess, Any]) -> dict[str, Any]:
    from pipelines.serving.traffic import batch_requests, newest_batch

    records, _ = batch_requests(gateway[1], newest_batch(gateway[1]))
    return records[0]


@pytest.fixture(scope="module")
def baseline_rss(gateway: tuple[GatewayProcess, Any], good_row: dict[str, Any]) -> float:
    gw = gateway[0]
    for _ in range(20):  # warm-up: imports, first predictions, log writer
        assert _good(gw, good_row).status_code == 200
    return gw.rss_mb()


def _good(gw: GatewayProcess, row: dict[str, Any]) -> httpx.Response:
    return gw.http.post("/invocations", content=json.dumps({"dataframe_records": [row]}), headers=JSON_CT)


def test_corpus_is_large_and_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) >= 60 and len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_clear_4xx_and_the_gateway_stays_up(
    gateway: tuple[GatewayProcess, Any], good_row: dict[str, Any], baseline_rss: float, case: Case
) -> None:
    gw, _ = gateway
    body = case.body(good_row) if callable(case.body) else case.body
    content: Any = body
    if case.stream and body is not None:
        chunked = body

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(chunked), 65536):
                yield chunked[i : i + 65536]

        content = chunks()
    t0 = time.perf_counter()
    try:
        resp = gw.http.request(case.method, case.path, content=content, headers=case.headers)
    except httpx.RemoteProtocolError:
        # The gateway answered early (before the whole body) and closed: read what it said.
        pytest.fail(f"{case.name}: connection closed without an answer\n{gw.logs()}")
    elapsed = time.perf_counter() - t0
    assert resp.status_code == case.status, f"{case.name}: {resp.status_code} {resp.text[:400]}"
    try:
        payload = resp.json()
        message = str(payload.get("message") or payload.get("detail") or "")
    except ValueError:
        message = resp.text
    assert case.message in message, f"{case.name}: {message[:400]}"
    assert elapsed < 10, f"{case.name}: {elapsed:.1f} s to refuse"
    # The process stays up and answers a good request; its memory stays bounded.
    assert gw.alive(), gw.logs()
    assert _good(gw, good_row).status_code == 200
    grown = gw.rss_mb() - baseline_rss
    print(f"case={case.name} status={resp.status_code} refuse_s={elapsed:.3f} rss_growth_mb={grown:.1f}")
    assert grown < RSS_BOUND_MB, f"{case.name}: RSS grew {grown:.0f} MB over the warm baseline"


def test_labels_write_path_is_validated_idempotent_and_audited(
    gateway: tuple[GatewayProcess, Any], good_row: dict[str, Any]
) -> None:
    from pipelines.core.predlog import read_label_audit, read_labels
    from pipelines.serving.labels import token_identity

    gw, s = gateway
    entity = f"audit-{time.time_ns()}"
    body = {"labels": [{"entity_id": entity, "label": 1, "event_time": "2013-05-01T05:00:00Z"}]}
    for _ in range(2):
        resp = gw.http.post("/labels", content=json.dumps(body), headers=LABELS)
        assert resp.status_code == 200 and resp.json()["recorded"] == 1, resp.text
    body["labels"][0]["label"] = 0
    assert gw.http.post("/labels", content=json.dumps(body), headers=LABELS).status_code == 200
    labels = read_labels(s)
    assert labels.loc[labels["entity_id"] == entity, "label"].tolist() == [0.0]  # one row: upserted
    audit = read_label_audit(s, entity_id=entity)
    assert audit["actor"].tolist() == [token_identity(LABELS_TOKEN)] * 3
    assert audit["label"].tolist() == [1.0, 1.0, 0.0]
    assert audit["previous_label"].fillna(-1).tolist() == [-1.0, 1.0, 1.0]
    assert LABELS_TOKEN not in audit.to_json()


def test_openapi_lists_every_write_path_with_its_body(gateway: tuple[GatewayProcess, Any]) -> None:
    spec = gateway[0].http.get("/openapi.json").json()
    for path in ("/invocations", "/labels", "/admin/canary", "/admin/weight", "/admin/rollback"):
        assert "application/json" in spec["paths"][path]["post"]["requestBody"]["content"], path


# --------------------------------------------------------------------------- schemathesis
FUZZ_STATS: dict[str, int] = {"cases": 0, "5xx": 0}


@pytest.fixture(scope="module")
def fuzz_gateway(world: World, session_root: Path) -> Iterator[tuple[GatewayProcess, Any]]:
    # Its own process and root: fuzzed admin calls may change what it serves.
    yield from _start(world, session_root / "openapi-fuzz")


def _fuzz(operation: Any, base_url: str, bearer: str, failures: list[str]) -> None:
    """Up to 40 valid and 40 invalid requests for one operation (seeded, no example database)."""
    from hypothesis import HealthCheck, given, seed, settings
    from schemathesis import GenerationMode

    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

    @seed(13)
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        resp = case.call(base_url=base_url, headers={"authorization": f"Bearer {bearer}"}, timeout=60)
        FUZZ_STATS["cases"] += 1
        if resp.status_code >= 500:
            FUZZ_STATS["5xx"] += 1
            failures.append(f"{case.method} {case.path} -> {resp.status_code} {resp.text[:200]}")

    run()


def test_openapi_fuzz_never_gets_a_5xx(fuzz_gateway: tuple[GatewayProcess, Any]) -> None:
    """Requests generated from the gateway's own OpenAPI (valid and invalid), bounded and seeded.

    Every operation gets the token of its path (labels or admin), so generated bodies get past
    authentication and reach the parsers; the corpus above covers the unauthenticated side.
    """
    import schemathesis

    gw, _ = fuzz_gateway
    schema = schemathesis.openapi.from_url(f"{gw.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        _fuzz(operation, gw.url, LABELS_TOKEN if operation.path == "/labels" else TOKEN, failures)
        assert gw.alive(), gw.logs()
    print(
        f"openapi_operations={operations} openapi_fuzz_cases={FUZZ_STATS['cases']} "
        f"openapi_fuzz_5xx={FUZZ_STATS['5xx']}"
    )
    assert operations >= 13 and FUZZ_STATS["cases"] >= 100
    assert not failures, "\n".join(failures[:20])
    assert gw.http.get("/ping").status_code == 200


# --------------------------------------------------------------------------- label writes: fail closed
@pytest.mark.parametrize("dev_open", [False, True], ids=["closed_without_token", "explicit_dev_opening"])
def test_labels_without_a_configured_token_fail_closed_unless_opened_for_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dev_open: bool
) -> None:
    from fastapi.testclient import TestClient

    from pipelines.config import load_settings
    from pipelines.core.predlog import read_label_audit
    from pipelines.serving.app import create_app

    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS__SERVING__LABELS_ALLOW_UNAUTHENTICATED", str(dev_open).lower())
    settings = load_settings()
    app = create_app(settings, admin_token=TOKEN, labels_token=None, use_env_token=False)
    with TestClient(app) as client:
        resp = client.post("/labels", content=label(entity="dev-1", value=0), headers=JSON_CT)
        if not dev_open:
            assert resp.status_code == 503 and "MLOPS_LABELS_TOKEN is not set" in resp.json()["message"]
            assert read_label_audit(settings).empty
            return
        assert resp.status_code == 200, resp.text
        # Opened, but never unchecked: the value rules still hold.
        assert client.post("/labels", content=label(value=7.5), headers=JSON_CT).status_code == 400
    audit = read_label_audit(settings)
    assert audit["actor"].tolist() == ["unauthenticated (serving.labels_allow_unauthenticated)"]


@pytest.mark.parametrize("down", ["postgres_refuses", "sqlite_folder_unusable"])
def test_labels_while_their_database_is_down_are_a_503_to_send_again_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, down: str
) -> None:
    """No spool for labels: a label write the database cannot take is refused (503 + Retry-After,
    "send them again"), never acknowledged and dropped; the same labels sent again once it is back
    are recorded. Both ways it can be down: a server refusing connections, a SQLite log whose
    folder cannot be created (an OSError, which used to be a 500)."""
    from fastapi.testclient import TestClient

    from pipelines.config import load_settings
    from pipelines.core.predlog import read_labels
    from pipelines.serving.app import create_app

    blocker = tmp_path / "labels-db"
    blocker.write_text("a file where the log's folder should be")
    url = (
        "postgresql+psycopg2://mlops:pw@127.0.0.1:9/mlops"  # port 9: connection refused at once
        if down == "postgres_refuses"
        else f"sqlite:///{blocker / 'prediction_log.db'}"
    )
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(tmp_path / "var"))
    monkeypatch.setenv("MLOPS__SERVING__PREDICTION_LOG_URL", url)
    settings = load_settings()
    body = label(entity="down-1", value=1, event_time="2013-05-01T05:00:00Z")
    app = create_app(settings, admin_token=TOKEN, labels_token=LABELS_TOKEN, use_env_token=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.post("/labels", content=body, headers=LABELS)
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["retry-after"]) > 0
        assert resp.json()["error_code"] == "SERVICE_UNAVAILABLE"
        assert "labels not recorded (send them again)" in resp.json()["message"]
        if down == "postgres_refuses":
            return
        blocker.unlink()  # the database is back
        again = client.post("/labels", content=body, headers=LABELS)
        assert again.status_code == 200 and again.json()["recorded"] == 1, again.text
    labels = read_labels(settings)
    assert labels.loc[labels["entity_id"] == "down-1", "label"].tolist() == [1.0]
