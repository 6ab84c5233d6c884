"""Typed task contracts at the orchestrator boundary: frozen dataclasses in, JSON out.

Steps take and return frozen dataclasses (``TrainingWindow``, ``TrainedCandidate``,
``GateVerdict``, ``Registration``, ``ReleasePlan``, ``RetrainDecision``...), so mypy checks what
flows between tasks and a reader can jump to its definition. XCom, however, stores JSON. One
adapter sits at that boundary, :func:`invoke`: it turns each argument that arrives as JSON back
into the dataclass the step's signature names, calls the step, and turns the result into JSON.
Validation is pydantic's (``TypeAdapter``), so a malformed hand-off fails with the field that
is wrong instead of a ``KeyError`` three calls later.

Only references travel this way (batch ids, URIs, run ids, versions), never data frames.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@cache
def _adapter(tp: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(tp)


def to_xcom(value: Any) -> Any:
    """A step's value as JSON-safe data: dataclasses as dicts, enums as their values, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _adapter(type(value)).dump_python(value, mode="json")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_xcom(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_xcom(v) for v in value]
    return value


def from_xcom(tp: type[T], data: Any) -> T:
    """Rebuild a contract from its JSON form (a value that already is a ``tp`` passes through)."""
    if isinstance(tp, type) and isinstance(data, tp):
        return data
    return typing.cast(T, _adapter(typing.cast(Any, tp)).validate_python(data))


def _is_contract(tp: Any) -> bool:
    """Whether ``tp`` is (or, as ``X | None``, contains) a dataclass or enum type worth rebuilding."""
    if isinstance(tp, type):
        return dataclasses.is_dataclass(tp) or issubclass(tp, Enum)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_contract(a) for a in typing.get_args(tp))
    return False


@cache
def _contract_params(step: Callable[..., Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(step)
    return {name: hint for name, hint in hints.items() if name != "return" and _is_contract(hint)}


def invoke(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``step`` with JSON arguments rebuilt into its declared contracts; return JSON.

    This is the one place where XCom's JSON meets the typed steps; DAG files call it (through
    ``dags/_common.call``) and tests can call it to check that a step survives the round trip.
    """
    contracts = _contract_params(step)
    if contracts:
        bound = inspect.signature(step).bind_partial(*args, **kwargs)
        for name, value in list(bound.arguments.items()):
            if name in contracts and value is not None:
                bound.arguments[name] = from_xcom(contracts[name], value)
        args, kwargs = bound.args, bound.kwargs
    return to_xcom(step(*args, **kwargs))
