"""Decision metrics (pipelines/core/metrics.py): the embedded textfile copy, group replacement,
the catalogue, and that METRICS.md documents exactly the catalogue and the gateway's metrics.

The Pushgateway itself is exercised in tests/integration/test_observability.py (a real one).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.core import metrics as m
from pipelines.monitoring.evidence import ColumnDrift, Performance, WindowResult

pytestmark = pytest.mark.observability

REPO = Path(__file__).resolve().parents[2]


def _values(settings: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(r["labels"].items())): r["value"]
        for r in m.read_textfiles(settings)
        if r["name"] == name
    }


def test_no_gateway_is_a_noop_push_with_a_textfile_copy(isolated_settings: Any) -> None:
    report = {
        "batch_id": "2013-02",
        "status": "rejected",
        "rows_in": 100,
        "rows_accepted": 0,
        "rows_quarantined": 100,
        "failed_expectations": ["dep_delay in range", "dep_delay in range", "schema"],
    }
    out = m.emit_quality_verdict(isolated_settings, report, now=1000.0)
    assert out.pushed is None and "no pushgateway" in out.detail
    assert out.grouping == {"dataset": isolated_settings.dataset.name, "batch": "2013-02"}
    status = _values(isolated_settings, "mlops_quality_batch_status")
    by_status = {dict(k)["status"]: v for k, v in status.items()}
    assert by_status == {"passed": 0.0, "passed_with_warnings": 0.0, "rejected": 1.0}
    failed = {dict(k)["expectation"] for k in _values(isolated_settings, "mlops_quality_failed_expectation")}
    assert failed == {"dep_delay in range", "schema"}  # deduplicated
    (labels,) = _values(isolated_settings, "mlops_quality_batch_interval_seconds")
    assert dict(labels)["job"] == "mlops_quality" and dict(labels)["batch"] == "2013-02"


def test_a_rerun_replaces_its_group_and_drops_what_no_longer_holds(isolated_settings: Any) -> None:
    kw: dict[str, Any] = {"window": "2013-04", "primary_metric": "roc_auc", "champion": 0.7}
    m.emit_gate_verdict(
        isolated_settings, passed=False, failed_criteria=["auc_vs_champion"], candidate=0.6, **kw
    )
    m.emit_gate_verdict(isolated_settings, passed=True, failed_criteria=[], candidate=0.72, **kw)
    m.emit_gate_verdict(
        isolated_settings, **{**kw, "window": "2013-05"}, passed=False, failed_criteria=["x"], candidate=0.5
    )
    assert _values(isolated_settings, "mlops_training_gate_criterion_failed") == {
        tuple(
            sorted(
                {
                    "criterion": "x",
                    "window": "2013-05",
                    "job": "mlops_training_gate",
                    "model": isolated_settings.mlflow.registered_model,
                    "dataset": isolated_settings.dataset.name,
                }.items()
            )
        ): 1.0
    }
    passed = {
        dict(k)["window"]: v for k, v in _values(isolated_settings, "mlops_training_gate_passed").items()
    }
    assert passed == {"2013-04": 1.0, "2013-05": 0.0}


def test_unknown_metric_or_wrong_labels_is_a_programming_error(isolated_settings: Any) -> None:
    with pytest.raises(KeyError, match="not in"):
        m.push(isolated_settings, "j", {}, [m.Sample("mlops_made_up", 1)])
    with pytest.raises(ValueError, match="labels"):
        m.push(isolated_settings, "j", {}, [m.Sample("mlops_quality_batch_rows", 1, {"wrong": "x"})])


def test_unreachable_gateway_never_fails_the_step(
    isolated_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.webhook import free_port

    monkeypatch.setenv("MLOPS__OBSERVABILITY__PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLOPS__OBSERVABILITY__PUSH_TIMEOUT_S", "1")
    from pipelines.config import load_settings

    settings = load_settings()
    out = m.emit_rollback(settings, "canary", now=5.0)
    assert out.pushed is False and "refused" in out.detail.lower()
    assert out.textfile is not None and Path(out.textfile).is_file()


def test_window_margin_is_signed_by_the_metric_direction(isolated_settings: Any) -> None:
    floor = isolated_settings.gate.for_task(isolated_settings.dataset.target.task).absolute["roc_auc"]
    result = WindowResult(
        window="2013-06",
        ordinal=6,
        as_of="2013-07-08",
        status="ok",
        n_predictions=500,
        feature_drift={"distance": ColumnDrift("distance", "wasserstein", 0.1, 0.25, True)},
        prediction_drift=ColumnDrift("prediction", "psi", 0.1, 0.02, False),
        drift_share=0.3,
        performance=Performance("roc_auc", True, floor - 0.05, 0.71, 400, 20),
    )
    m.emit_window(isolated_settings, result, now=7.0)
    (margin,) = _values(isolated_settings, "mlops_monitoring_performance_floor_margin").values()
    assert margin == pytest.approx(-0.05)
    (score,) = _values(isolated_settings, "mlops_monitoring_feature_drift_score").values()
    assert score == 0.25


def test_task_outcome_callback_reads_the_airflow_context(isolated_settings: Any) -> None:
    ti = SimpleNamespace(dag_id="standardize_data_quality", task_id="validate")
    m.task_outcome_callback({"ti": ti}, success=False)
    ((labels, value),) = _values(isolated_settings, "mlops_airflow_task_last_success").items()
    assert value == 0.0 and dict(labels)["task_id"] == "validate"
    m.task_outcome_callback({"ti": ti}, success=True)
    assert list(_values(isolated_settings, "mlops_airflow_task_last_success").values()) == [1.0]
    m.task_outcome_callback({}, success=True)  # a context without a task never raises


def _documented() -> set[str]:
    text = (REPO / "monitoring" / "METRICS.md").read_text()
    return set(re.findall(r"^\|\s*`([A-Za-z_:][A-Za-z0-9_:]*)`", text, flags=re.M))


def test_metrics_md_documents_every_pushed_metric() -> None:
    documented = _documented()
    missing = sorted(set(m.CATALOGUE) - documented)
    assert not missing, f"monitoring/METRICS.md lacks {missing}"


def test_metrics_md_documents_every_gateway_metric() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from pipelines.serving.metrics import GatewayMetrics

    gm = GatewayMetrics([0.5])
    # A family's exposed names: counters gain _total, histograms _bucket/_sum/_count; the parser
    # reports an unlabelled counter's _created sample as its own family, which is no metric of ours.
    names = {
        f.name
        for f in text_string_to_metric_families(gm.render().decode())
        if not f.name.endswith("_created")
    }
    documented = _documented()
    missing = sorted(n for n in names if not any(d == n or d.startswith(n + "_") for d in documented))
    assert names and not missing, f"monitoring/METRICS.md lacks gateway metrics {missing}"


def test_summary_rows_name_each_group_and_its_nonzero_figures(isolated_settings: Any) -> None:
    m.emit_retrain_decision(isolated_settings, "2013-07", "retrain", ["important_drift"], [], now=9.0)
    m.emit_rollback(isolated_settings, "champion", now=10.0)
    rows = {r["job"]: r for r in m.summarise_textfiles(isolated_settings)}
    retrain = rows["mlops_retrain"]
    assert "window=2013-07" in retrain["group"] and "job" not in retrain["group"]
    assert retrain["figures"] == "decision{action=retrain}=1; check_violated{check=important_drift}=1"
    assert rows["mlops_canary_rollback"]["figures"] == ""  # only a timestamp, which is left out
    assert "scope=champion" in rows["mlops_canary_rollback"]["group"]
