"""Table tests of the retrain policy (pure: no files, no Evidently).

Each case builds the evidence of one window (drift scores, performance) and the decisions of
earlier windows, and checks the action and the reason the policy gives.
"""

from __future__ import annotations

import pytest

from pipelines.config import MonitoringConfig
from pipelines.monitoring.evidence import ColumnDrift, Performance, WindowResult
from pipelines.monitoring.policy import PastWindow, PolicyHistory, RetrainLock, decide

IMPORTANT = ["sched_dep_time", "carrier", "dest"]
REF = "v1|2013-01,2013-02"
CFG = MonitoringConfig(
    important_features=IMPORTANT,
    hysteresis_n=2,
    hysteresis_m=3,
    severe_drift_factor=2.5,
    severe_performance_drop=0.10,
    max_performance_drop=0.05,
    min_mature_labels=500,
    cooldown_windows=1,
    max_retrains_per_period=2,
    period_windows=6,
)


def drift(col: str, score: float, threshold: float = 0.1, method: str = "wasserstein") -> ColumnDrift:
    return ColumnDrift(col, method, threshold, score, score >= threshold)


def window(
    ordinal: int,
    *,
    drifts: dict[str, float] | None = None,
    pred: float | None = 0.02,
    auc: float | None = 0.70,
    baseline: float | None = 0.70,
    labels: int = 5000,
    status: str = "ok",
    ref: str = REF,
) -> WindowResult:
    scores = dict.fromkeys(IMPORTANT, 0.02) | (drifts or {})
    return WindowResult(
        window=f"w{ordinal:02d}",
        ordinal=ordinal,
        as_of="2013-06-01T04:00:00+00:00",
        status=status,  # type: ignore[arg-type]
        reason="" if status == "ok" else "no served predictions",
        model_version="1",
        reference_key=ref,
        important_features=IMPORTANT,
        feature_drift={c: drift(c, s) for c, s in scores.items()},
        prediction_drift=None if pred is None else drift("prediction", pred, 0.1, "psi"),
        performance=Performance("roc_auc", True, auc, baseline, labels, 100),
    )


def past(ordinal: int, violated: bool | None, action: str, ref: str = REF) -> PastWindow:
    return PastWindow(f"w{ordinal:02d}", ordinal, ref, violated, action)  # type: ignore[arg-type]


def history(*windows: PastWindow, lock: RetrainLock | None = None) -> PolicyHistory:
    return PolicyHistory(tuple(windows), lock)


def test_all_checks_within_limits_is_no_retrain() -> None:
    d = decide(history(), window(10), CFG)
    assert d.action == "no_retrain" and d.violated is False
    assert {c.name: c.status for c in d.checks} == {
        "important_drift": "ok",
        "prediction_drift": "ok",
        "performance": "ok",
    }


def test_drift_of_unimportant_features_never_counts() -> None:
    res = window(10)
    res.feature_drift["temp"] = drift("temp", 5.0)  # seasonal weather: huge, but not important
    res.drift_share = 0.9
    assert decide(history(), res, CFG).action == "no_retrain"


@pytest.mark.parametrize(
    ("earlier", "now", "action", "reason_part"),
    [
        # one moderate violation: hysteresis holds it back
        ([], {"dest": 0.15}, "no_retrain", "hysteresis: 1 of the last 1"),
        ([past(9, False, "no_retrain")], {"dest": 0.15}, "no_retrain", "1 of the last 2"),
        # 2 of the last 3, the latest included: fire
        ([past(8, True, "no_retrain"), past(9, False, "no_retrain")], {"dest": 0.15}, "retrain", "dest"),
        ([past(9, True, "no_retrain")], {"carrier": 0.12}, "retrain", "carrier"),
        # the earlier violation is outside the last M=3 judged windows
        (
            [past(6, True, "no_retrain"), past(7, False, "no_retrain"), past(8, False, "no_retrain")],
            {"dest": 0.15},
            "no_retrain",
            "hysteresis",
        ),
        # windows without a judgement (no data) do not dilute the evidence
        ([past(8, True, "no_retrain"), past(9, None, "no_decision")], {"dest": 0.15}, "retrain", "dest"),
        # evidence against another champion/reference does not count
        ([past(9, True, "no_retrain", ref="v0|2012-10")], {"dest": 0.15}, "no_retrain", "hysteresis"),
        # severe jump (>= 2.5x threshold): no hysteresis
        ([], {"sched_dep_time": 0.30}, "retrain", "severe"),
    ],
)
def test_hysteresis(earlier: list[PastWindow], now: dict[str, float], action: str, reason_part: str) -> None:
    d = decide(history(*earlier), window(10, drifts=now), CFG)
    assert d.action == action, d.reasons
    assert any(reason_part in r for r in d.reasons), d.reasons


def test_performance_drop_triggers_and_severe_drop_skips_hysteresis() -> None:
    moderate = decide(history(), window(10, auc=0.64, baseline=0.70), CFG)
    assert moderate.action == "no_retrain" and moderate.violated
    assert any("performance drop" in r for r in moderate.reasons)
    severe = decide(history(), window(10, auc=0.58, baseline=0.70), CFG)
    assert severe.action == "retrain" and severe.severe


def test_performance_needs_matured_labels_and_a_baseline() -> None:
    few = decide(history(), window(10, auc=0.40, labels=120), CFG)
    assert few.action == "no_decision"  # a collapse on 120 labels is not evidence
    assert any("only 120 matured labels" in r for r in few.reasons)
    no_base = decide(history(), window(10, baseline=None), CFG)
    assert no_base.action == "no_decision"
    assert any("holdout figure is unknown" in r for r in no_base.reasons)


def test_missing_evidence_is_no_decision_not_a_pass() -> None:
    assert decide(history(), window(10, status="insufficient_data"), CFG).action == "no_decision"
    assert decide(history(), window(10, status="error"), CFG).action == "no_decision"
    no_pred = decide(history(), window(10, pred=None), CFG)
    assert no_pred.action == "no_decision"
    assert any("prediction_drift not evaluated" in r for r in no_pred.reasons)


def test_violation_with_missing_evidence_still_counts() -> None:
    """Labels lag: drift evidence alone can retrain even when performance is not judged yet."""
    d = decide(history(past(9, True, "no_retrain")), window(10, drifts={"dest": 0.2}, labels=0), CFG)
    assert d.action == "retrain"


def test_cooldown_and_max_per_period_stop_a_storm() -> None:
    """Severe drift in every window: cooldown and the cap per period allow 4 retrains in 10."""
    cfg = CFG.model_copy(update={"cooldown_windows": 1, "max_retrains_per_period": 2, "period_windows": 6})
    seen: list[PastWindow] = []
    actions = []
    for ordinal in range(1, 11):
        d = decide(history(*seen), window(ordinal, drifts={"sched_dep_time": 0.9}), cfg)
        actions.append(d.action)
        seen.append(d.as_past())
        if d.action == "no_retrain":
            assert d.blocked_by, d.reasons
    # The period is the last 6 windows, the current one included.
    assert actions == [
        "retrain",  # w1
        "no_retrain",  # w2 cooldown
        "retrain",  # w3
        "no_retrain",  # w4 cooldown
        "no_retrain",  # w5 cap: w1, w3 in w0..w5
        "no_retrain",  # w6 cap: w1, w3 in w1..w6
        "retrain",  # w7: w1 left the period
        "no_retrain",  # w8 cooldown
        "retrain",  # w9: only w7 in w4..w9
        "no_retrain",  # w10 cooldown
    ]
    assert sum(a == "retrain" for a in actions) == 4


def test_one_retrain_in_flight() -> None:
    lock = RetrainLock("w05", "2026-01-01T00:00:00+00:00")
    d = decide(history(lock=lock), window(9, drifts={"sched_dep_time": 0.9}), CFG)
    assert d.action == "no_retrain" and d.blocked_by == ["in_flight"]
    # the window that took the lock is not blocked by it (idempotent re-run)
    again = decide(
        history(lock=RetrainLock("w09", "2026-01-01T00:00:00+00:00")),
        window(9, drifts={"sched_dep_time": 0.9}),
        CFG,
    )
    assert again.action == "retrain"


def test_history_after_the_window_is_ignored() -> None:
    """Re-deciding an old window must not see decisions of later windows."""
    later = [past(11, True, "retrain"), past(12, True, "no_retrain")]
    assert decide(history(*later), window(10, drifts={"sched_dep_time": 0.9}), CFG).action == "retrain"


def test_p_value_methods_have_no_severity() -> None:
    col = ColumnDrift("carrier", "chisquare", 0.05, 0.0001, True)
    assert col.severity is None
    res = window(10)
    res.feature_drift["carrier"] = col
    d = decide(history(), res, CFG)
    assert d.action == "no_retrain" and not d.severe  # detected, but hysteresis applies


def test_hysteresis_config_is_validated() -> None:
    with pytest.raises(ValueError, match="hysteresis_n"):
        MonitoringConfig(hysteresis_n=4, hysteresis_m=3)


def test_important_features_from_config_or_the_champions_importance(settings) -> None:  # type: ignore[no-untyped-def]
    from pipelines.monitoring.reference import Reference, important_features

    ref = Reference(
        batches=["2013-01"],
        source="test",
        model_version="3",
        importance={"temp": -0.01, "dest": 0.03, "carrier": 0.02, "hour": 0.05, "not_a_feature": 9.0},
    )
    configured, source = important_features(settings, ref)
    assert (
        configured == list(settings.monitoring.important_features)
        and source == "monitoring.important_features"
    )
    derived_settings = settings.model_copy(
        update={
            "monitoring": settings.monitoring.model_copy(
                update={"important_features": [], "important_top_k": 2}
            )
        }
    )
    derived, source = important_features(derived_settings, ref)
    assert derived == ["hour", "dest"] and "v3 importance" in source  # ranked, positive, known features only
    fallback, source = important_features(derived_settings, Reference(batches=["2013-01"], source="test"))
    assert fallback == settings.dataset.features.all and "no importance" in source
    bad = settings.model_copy(
        update={"monitoring": settings.monitoring.model_copy(update={"important_features": ["wingspan"]})}
    )
    with pytest.raises(ValueError, match="wingspan"):
        important_features(bad, ref)
