"""One source of defaults: the code's field defaults; YAML files hold only what their dataset needs.

A YAML value equal to its field's default is a second copy that silently drifts (the issue found
three that had: a minimal YAML got a weaker gate), so restating one fails here. Every
``MLOPS__SECTION__KEY`` the docs and configs mention must name a real field, and every example
with a value must load (a documented example once named a field that did not exist).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter

from pipelines.config import GateConfig, Settings, TrainingConfig, load_settings

pytestmark = pytest.mark.template

REPO = Path(__file__).resolve().parents[2]
SHIPPED_YAMLS = [
    REPO / "config" / "pipeline.yaml",
    *sorted((REPO / "tests" / "data").glob("*/pipeline.yaml")),
]
DOCUMENTED = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "config" / "pipeline.yaml",
    REPO / "docker-compose.yml",
    REPO / "Makefile",
    *sorted((REPO / "pipelines" / "config").glob("*.py")),
]
ENV_EXAMPLE = re.compile(r"(MLOPS__[A-Z0-9_]+)(?:(?:=|: )([^\s`'\")]+))?")


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {k: _plain(v) for k, v in value.model_dump(mode="json").items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _restated(model: type[BaseModel], raw: dict[str, Any], where: str) -> list[str]:
    """YAML keys whose value equals the field's own default (fields without a default are skipped)."""
    found: list[str] = []
    for key, value in raw.items():
        field = model.model_fields.get(key)
        if field is None or field.is_required():
            # required (no default): the value is needed; still look inside nested sections
            nested = field.annotation if field is not None else None
            if isinstance(value, dict) and isinstance(nested, type) and issubclass(nested, BaseModel):
                found += _restated(nested, value, f"{where}.{key}")
            continue
        default = field.get_default(call_default_factory=True)
        typed = TypeAdapter(field.annotation or Any).validate_python(value)
        if _plain(typed) == _plain(default):
            found.append(f"{where}.{key} = {value!r} (the default)")
            continue
        nested = field.annotation
        if isinstance(value, dict) and isinstance(nested, type) and issubclass(nested, BaseModel):
            found += _restated(nested, value, f"{where}.{key}")
    return found


@pytest.mark.parametrize("path", SHIPPED_YAMLS, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_yaml_restates_no_code_default(path: Path) -> None:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    restated = _restated(Settings, {k: v for k, v in raw.items() if k != "dataset"}, path.name)
    assert restated == [], f"{path}: drop these lines, the code default applies: {restated}"


def test_the_check_itself_catches_a_restated_default() -> None:
    assert _restated(Settings, {"training": {"min_holdout_rows": 300, "min_rows": 5}}, "x") == [
        "x.training.min_holdout_rows = 300 (the default)"
    ]
    assert (
        _restated(Settings, {"monitoring": {"prediction_test": {"method": "psi", "threshold": 0.1}}}, "x")
        == []
    )


def test_code_defaults_are_the_strict_production_values() -> None:
    # the three that once differed from the shipped YAML, now the stricter value in code
    assert TrainingConfig().min_holdout_rows == 300
    assert GateConfig().min_behavioural_checks == 2
    assert GateConfig().slice_min_rows == 300  # gates more slices than the flights file's 1000


def _documented_examples() -> list[tuple[str, str, str | None]]:
    found = []
    for doc in DOCUMENTED:
        if not doc.is_file():
            continue
        for m in ENV_EXAMPLE.finditer(doc.read_text(encoding="utf-8")):
            if "SECTION" in m.group(1):  # the MLOPS__SECTION__KEY pattern itself
                continue
            value = m.group(2)
            if value is not None and ("${" in value or "<" in value):
                value = None  # a compose substitution or a placeholder: check the name only
            found.append((doc.name, m.group(1), value))
    return found


def _field_path_exists(name: str) -> bool:
    model: Any = Settings
    for part in name.removeprefix("MLOPS__").lower().split("__"):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        model = fields[part].annotation
    return True


def test_every_documented_override_names_a_real_field() -> None:
    examples = _documented_examples()
    assert len(examples) >= 5  # the docs do show examples; an empty scan would prove nothing
    wrong = sorted({f"{doc}: {name}" for doc, name, _ in examples if not _field_path_exists(name)})
    assert wrong == []


def test_every_documented_override_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    with_values = [(doc, name, value) for doc, name, value in _documented_examples() if value]
    assert any(name == "MLOPS__TRAINING__WINDOW_BATCHES" for _, name, _ in with_values)
    for doc, name, value in with_values:
        with monkeypatch.context() as mp:
            mp.setenv(name, value)
            try:
                load_settings()
            except Exception as exc:
                pytest.fail(f"{doc}: {name}={value} does not load: {exc}")
