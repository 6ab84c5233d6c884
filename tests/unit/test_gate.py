"""Evaluation gate and training policy (issue 3): table-driven, pure, no MLflow needed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipelines.config import BehaviouralCheck, GateConfig, TaskGate
from pipelines.training.errors import TrainingConfigError
from pipelines.training.metrics import improvement
from pipelines.training.policy import decide_should_train
from pipelines.training.verdict import decide

GATE = GateConfig(
    classification=TaskGate(primary_metric="roc_auc", absolute={"roc_auc": 0.60, "log_loss": 0.65}),
    max_regression=0.01,
    slice_tolerance=0.03,
    slice_min_rows=300,
    min_behavioural_checks=2,
    behavioural=[
        BehaviouralCheck(name="inv", kind="invariance", column="temp", op="add", value=1.0, tolerance=0.02),
        BehaviouralCheck(
            name="dir",
            kind="directional",
            column="precip",
            op="add",
            value=0.2,
            expect="increase",
            tolerance=0.005,
        ),
    ],
)

BASE: dict[str, Any] = {
    "task": "classification",
    "candidate": {"metrics": {"roc_auc": 0.66, "log_loss": 0.58}},
    "champion": {"version": "3", "metrics": {"roc_auc": 0.65, "log_loss": 0.59}},
    "slices": [
        {
            "column": "carrier",
            "value": "AA",
            "rows": 2600,
            "gated": True,
            "candidate": 0.64,
            "champion": 0.63,
        },
        {"column": "carrier", "value": "HA", "rows": 30, "gated": False, "note": "too few rows"},
        {
            "column": "origin",
            "value": "JFK",
            "rows": 9000,
            "gated": True,
            "candidate": 0.67,
            "champion": 0.66,
        },
    ],
    "behavioural": [
        {"name": "inv", "rows": 2000, "mean_shift": 0.001, "mean_abs_shift": 0.004},
        {"name": "dir", "rows": 2000, "mean_shift": 0.03, "mean_abs_shift": 0.03},
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes, e.g. {"candidate.metrics.roc_auc": 0.5}."""
    doc = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return doc


AUC = "candidate.metrics.roc_auc"
ABS, REL = "absolute:roc_auc", "relative:roc_auc"

# (case, evaluation document, passed, failed criteria, a number the failure must quote)
CASES = [
    ("pass", BASE, True, [], None),
    ("fail absolute", _with(**{AUC: 0.55}), False, [ABS, REL], "0.5500"),
    (
        "fail absolute, lower-is-better metric",
        _with(**{"candidate.metrics.log_loss": 0.70}),
        False,
        ["absolute:log_loss"],
        "0.7000 <= 0.65",
    ),
    ("fail relative", _with(**{AUC: 0.635}), False, [REL], "-0.0150"),
    ("relative within tolerance", _with(**{AUC: 0.645}), True, [], None),
    ("fail slice", _with(**{"slices.0.candidate": 0.59}), False, ["slice:carrier=AA"], "-0.0400"),
    ("ungated small slice is ignored", _with(**{"slices.1.candidate": 0.1}), True, [], None),
    (
        "fail invariance",
        _with(**{"behavioural.0.mean_abs_shift": 0.05}),
        False,
        ["behavioural:inv"],
        "0.0500",
    ),
    ("fail directional", _with(**{"behavioural.1.mean_shift": -0.02}), False, ["behavioural:dir"], "-0.0200"),
    (
        "missing behavioural result fails closed",
        _with(behavioural=[BASE["behavioural"][0]]),
        False,
        ["behavioural:dir"],
        "no result",
    ),
    ("first model: absolute only", _with(champion=None, **{"slices.0.candidate": 0.1}), True, [], None),
    (
        "first model still needs the absolute bar",
        _with(champion=None, **{AUC: 0.5}),
        False,
        [ABS],
        "0.5000 >= 0.6",
    ),
    (
        "missing metric fails closed",
        _with(**{"candidate.metrics": {"roc_auc": 0.66}}),
        False,
        ["absolute:log_loss"],
        "not computed",
    ),
    ("NaN metric fails closed", _with(**{AUC: float("nan")}), False, [ABS, REL], "not"),
    (
        "everything wrong: every failure listed",
        _with(**{AUC: 0.5, "slices.2.candidate": 0.5, "behavioural.1.mean_shift": -0.1}),
        False,
        [ABS, REL, "slice:origin=JFK", "behavioural:dir"],
        None,
    ),
]


@pytest.mark.parametrize(("case", "doc", "passed", "failed", "quoted"), CASES, ids=[c[0] for c in CASES])
def test_gate_decision_table(
    case: str, doc: dict, passed: bool, failed: list[str], quoted: str | None
) -> None:
    verdict = decide(doc, GATE, "classification")
    assert verdict.passed is passed, verdict.failures
    assert verdict.failed_criteria == failed
    if quoted is not None:
        assert any(quoted in f for f in verdict.failures), verdict.failures
    out = verdict.to_dict()
    assert out["verdict"] == ("passed" if passed else "rejected")
    assert len(out["failures"]) == len(failed)
    # every criterion is listed with its numbers, passed or not
    kinds = {c["kind"] for c in out["criteria"]}
    assert {"absolute", "behavioural"} <= kinds
    assert ("relative" in kinds) is (doc["champion"] is not None)


def test_too_few_behavioural_checks_configured_fails_the_gate() -> None:
    gate = GATE.model_copy(update={"behavioural": GATE.behavioural[:1]})
    verdict = decide(BASE, gate, "classification")
    assert not verdict.passed
    assert verdict.failed_criteria == ["config:behavioural_checks"]
    assert "1 behavioural checks configured" in verdict.failures[0]


def test_regression_gate_uses_its_own_metric_and_direction() -> None:
    gate = GateConfig(regression=TaskGate(primary_metric="rmse", absolute={"r2": 0.2, "rmse": 60.0}))
    doc = {
        "task": "regression",
        "candidate": {"metrics": {"r2": 0.35, "rmse": 58.0}},
        "champion": {"version": "1", "metrics": {"r2": 0.40, "rmse": 55.0}},
        "slices": [],
        "behavioural": [],
    }
    verdict = decide(doc, gate, "regression")
    # rmse 58 vs 55 is *worse* by 3 (lower is better): the relative criterion must see a loss
    assert verdict.failed_criteria == ["relative:rmse"]
    assert "-3.0000" in verdict.failures[0]
    assert improvement("regression", "rmse", 50.0, 55.0) == pytest.approx(5.0)


def test_unknown_metric_in_config_is_refused() -> None:
    gate = GateConfig(classification=TaskGate(primary_metric="roc_auc", absolute={"rocauc": 0.6}))
    with pytest.raises(TrainingConfigError, match="rocauc"):
        decide(BASE, gate, "classification")


def test_behavioural_check_config_is_validated() -> None:
    with pytest.raises(ValueError, match="needs expect"):
        BehaviouralCheck(name="x", kind="directional", column="a", op="add", value=1)
    with pytest.raises(ValueError, match="takes no expect"):
        BehaviouralCheck(name="x", kind="invariance", column="a", op="add", value=1, expect="increase")


# --------------------------------------------------------------------------- when to train
POLICY = [
    # reason, asset, champion, challenger, published, retrain_every, train?, why contains
    ("drift on 2013-07", True, True, False, 8, False, True, "requested"),
    ("", False, True, False, 8, False, True, "manual"),
    ("", True, False, False, 3, False, False, "waiting for data"),
    ("", True, False, False, 4, False, True, "bootstrap"),
    ("", True, True, False, 9, False, False, "champion exists"),
    ("", True, False, True, 5, False, False, "challenger awaiting release"),
    ("", True, True, False, 9, True, True, "retrain_on_every_batch"),
]


@pytest.mark.parametrize(
    ("reason", "asset", "champion", "challenger", "published", "every", "train", "why"), POLICY
)
def test_should_train_policy(
    reason: str,
    asset: bool,
    champion: bool,
    challenger: bool,
    published: int,
    every: bool,
    train: bool,
    why: str,
) -> None:
    decision = decide_should_train(
        reason=reason,
        asset_triggered=asset,
        has_champion=champion,
        has_challenger=challenger,
        published=published,
        needed=4,
        retrain_on_every_batch=every,
    )
    assert decision.train is train
    assert why in decision.why
