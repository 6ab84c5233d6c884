"""What the gateway's input checks cost: good payloads parsed and checked, bad ones refused.

Prints ``name=value`` lines (milliseconds, median of repeats, in this process, no HTTP):

* ``parse_checked_ms_rows_{1,100,5000}``: :func:`pipelines.serving.inputs.parse_body` with the
  entity-id / event-time / number / surrogate checks, on realistic flight rows;
* ``refuse_million_empty_rows_ms``: :func:`pipelines.serving.inputs.read_limited` refusing a
  3 MB body of a million empty rows arriving in 64 KiB chunks (the CPU-amplification case: it
  used to take 8-10 s after a full parse);
* ``refuse_huge_integer_ms``: a 4,000-digit integer literal refused with its column.

Run: ``.venv/bin/python benchmarks/bench_bad_inputs.py``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from pipelines.serving.inputs import BadInputError, parse_body, read_limited

ROW = {
    "flight_id": "2013-05-01_UA_1545_EWR_515",
    "time_hour": "2013-05-01T09:00:00+00:00",
    "distance": 1400.0,
    "hour": 5,
    "sched_dep_time": 515,
    "carrier": "UA",
    "origin": "EWR",
    "dest": "IAH",
    "temp": 50.2,
}
COLUMNS = list(ROW)


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _body(n: int) -> bytes:
    rows = [
        dict(ROW, flight_id=f"{ROW['flight_id']}_{i}", time_hour=f"2013-05-01T{i % 24:02d}:00:00+00:00")
        for i in range(n)
    ]
    return json.dumps({"dataframe_records": rows}).encode()


def _parse(body: bytes) -> None:
    parse_body(body, 5000, COLUMNS, id_column="flight_id", time_column="time_hour", max_id_chars=256)


def _refuse(body: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    try:
        asyncio.run(
            read_limited(
                chunks(), declared_length=None, max_bytes=5_000_000, max_containers=5008, limit_name="rows"
            )
        )
    except BadInputError as exc:
        assert exc.status_code == 413
        return
    raise AssertionError("a million empty rows were accepted")


def _refuse_parse(body: bytes) -> None:
    try:
        _parse(body)
    except BadInputError as exc:
        assert "'distance'" in exc.message
        return
    raise AssertionError("a 4,000-digit integer was accepted")


def main() -> None:
    for n, repeats in ((1, 2000), (100, 200), (5000, 10)):
        body = _body(n)
        print(f"parse_checked_ms_rows_{n}={_median_ms(lambda b=body: _parse(b), repeats):.3f}")
    empty_rows = b'{"instances": [' + b"[]," * 1_000_000 + b"[]]}"
    print(f"refuse_million_empty_rows_ms={_median_ms(lambda: _refuse(empty_rows), 20):.3f}")
    huge = json.dumps({"dataframe_records": [dict(ROW, distance=0)]}).replace(
        '"distance": 0', '"distance": ' + "9" * 4000
    )
    print(f"refuse_huge_integer_ms={_median_ms(lambda: _refuse_parse(huge.encode()), 50):.3f}")


if __name__ == "__main__":
    main()
