"""The one redaction rule (pipelines.core.redact) on the shapes secrets take in our output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.core.redact import MASK, is_secret_name, redact, redact_text, secret_values

pytestmark = pytest.mark.edges

PASSWORD = "s3cr3t-Pa55word"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (
            f"postgresql+psycopg2://mlops:{PASSWORD}@postgres:5432/mlops",
            "postgresql+psycopg2://mlops:***@postgres",
        ),
        (f"redis://:{PASSWORD}@redis:6379/0", "redis://:***@redis:6379/0"),
        (f"http://admin:{PASSWORD}@mlflow:5000/api", "http://admin:***@mlflow:5000/api"),
        (f"https://host/path?x=1&token={PASSWORD}&y=2", "token=***&y=2"),
        (f"host=db user=mlops password={PASSWORD} dbname=x", "password=*** dbname=x"),
        (f"error: could not connect to postgresql://u:{PASSWORD}@h/db (timeout)", "postgresql://u:***@h/db"),
    ],
)
def test_url_and_dsn_passwords_are_masked_and_the_rest_kept(text: str, kept: str) -> None:
    out = redact_text(text, secrets=[])
    assert PASSWORD not in out
    assert kept in out


def test_known_secret_values_are_masked_in_free_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_GATEWAY_ADMIN_TOKEN", "tok-abcdef-123456")
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", "https://hooks.example/T000/B000/XXXX")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to search for: would mask ordinary words
    values = secret_values()
    assert "tok-abcdef-123456" in values and "abc" not in values
    out = redact_text("cmd --token tok-abcdef-123456 posted to https://hooks.example/T000/B000/XXXX")
    assert "tok-abcdef-123456" not in out and "hooks.example/T000" not in out
    assert out.count(MASK) == 2


def test_structures_keep_their_shape_and_secret_named_keys_are_masked() -> None:
    obj = {
        "prediction_log_url": f"postgresql://u:{PASSWORD}@h/db",
        "labels_token": "anything at all",
        "alert_webhook_url": "https://example.org/hook/abc",
        "empty_password": "",
        "n_rows": 3,
        "nested": [{"api_key": "k"}, ("x", f"sqlite:///{PASSWORD}.db")],
        "error": RuntimeError(f"cannot reach postgresql://u:{PASSWORD}@h/db"),
    }
    out = redact(obj, secrets=[PASSWORD])
    assert out["labels_token"] == MASK and out["alert_webhook_url"] == MASK
    assert out["empty_password"] == ""  # an unset secret stays visibly unset
    assert out["n_rows"] == 3
    assert out["nested"][0]["api_key"] == MASK
    assert isinstance(out["nested"][1], tuple)
    assert PASSWORD not in json.dumps(out, default=str)
    assert out["error"].startswith("RuntimeError: cannot reach postgresql://u:***@h")


def test_redaction_is_idempotent_and_leaves_plain_text_alone() -> None:
    text = f"sqlite:////var/lib/x.db and mysql://a:{PASSWORD}@b/c and key=value"
    once = redact_text(text, secrets=[])
    assert redact_text(once, secrets=[]) == once
    assert (
        redact_text("no secrets here: a=b, x://host/path", secrets=[])
        == "no secrets here: a=b, x://host/path"
    )


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("MLOPS_DB_PASSWORD", True),
        ("MLOPS_LABELS_TOKEN", True),
        ("AIRFLOW__CORE__FERNET_KEY", True),
        ("EVIDENTLY_SECRET", True),
        ("MLOPS_ALERT_WEBHOOK_URL", True),
        ("MLOPS__SERVING__REQUEST_KEY_HEADER", False),
        ("MLOPS__PATHS__ROOT", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_log_lines_and_json_records_pass_through_the_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.core.observability import get_logger, write_json_atomic

    monkeypatch.setenv("MLOPS_DB_PASSWORD", PASSWORD)
    get_logger("test").error(f"flush failed for postgresql://u:{PASSWORD}@h/db", url=f"x://u:{PASSWORD}@h")
    path = tmp_path / "rec.json"
    write_json_atomic(path, {"url": f"postgresql://u:{PASSWORD}@h/db", "note": f"pw {PASSWORD}"})
    captured = capsys.readouterr()
    assert "flush failed" in captured.out + captured.err
    assert PASSWORD not in captured.out + captured.err
    assert PASSWORD not in path.read_text() and "postgresql://u:***@h/db" in path.read_text()
