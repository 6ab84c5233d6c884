"""Evaluation gate (issues 3, 12) and training policy (issue 3): table-driven, pure, no MLflow needed."""

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

LATENCY = {"rows": 1000, "candidate_ms": [52.0, 50.0, 55.0], "champion_ms": [49.0, 51.0, 50.0]}


def _cmp(improvement: float, se: float, rows: int = 9000) -> dict[str, Any]:
    return {
        "method": "delong_paired",
        "rows": rows,
        "candidate": 0.65 + improvement,
        "champion": 0.65,
        "improvement": improvement,
        "se": se,
    }


BASE: dict[str, Any] = {
    "task": "classification",
    "predict_contract": {"passed": True, "stage": "holdout", "detail": "27000 rows scored"},
    "candidate": {"metrics": {"roc_auc": 0.66, "log_loss": 0.58}, "primary_se": 0.004},
    "champion": {
        "version": "3",
        "metrics": {"roc_auc": 0.65, "log_loss": 0.59},
        "comparison": _cmp(0.01, 0.002, 27000),
    },
    "slices": [
        {
            "column": "carrier",
            "value": "AA",
            "rows": 2600,
            "gated": True,
            "candidate": 0.64,
            "champion": 0.63,
            "comparison": _cmp(0.01, 0.01, 2600),
        },
        {"column": "carrier", "value": "HA", "rows": 30, "gated": False, "note": "too few rows"},
        {
            "column": "origin",
            "value": "JFK",
            "rows": 9000,
            "gated": True,
            "candidate": 0.67,
            "champion": 0.66,
            "comparison": _cmp(0.01, 0.004),
        },
    ],
    "behavioural": [
        {
            "name": "inv",
            "rows": 2000,
            "mean_shift": 0.001,
            "mean_shift_se": 0.0002,
            "mean_abs_shift": 0.004,
            "mean_abs_shift_se": 0.0003,
        },
        {
            "name": "dir",
            "rows": 2000,
            "mean_shift": 0.03,
            "mean_shift_se": 0.002,
            "mean_abs_shift": 0.03,
            "mean_abs_shift_se": 0.002,
        },
    ],
    "latency": LATENCY,
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
REL_CMP = "champion.comparison"
ABS, REL = "absolute:roc_auc", "relative:roc_auc"
PC = "predict_contract:holdout"

# (case, evaluation document, passed, failed criteria, a number the failure must quote)
CASES = [
    ("pass", BASE, True, [], None),
    ("fail absolute", _with(**{AUC: 0.55}), False, [ABS], "0.5500"),
    (
        "fail absolute, lower-is-better metric",
        _with(**{"candidate.metrics.log_loss": 0.70}),
        False,
        ["absolute:log_loss"],
        "0.7000 <= 0.65",
    ),
    (
        "fail relative: significantly worse beyond the margin",
        _with(**{REL_CMP: _cmp(-0.03, 0.003)}),
        False,
        [REL],
        "-0.0300",
    ),
    ("relative: worse point estimate, but noise", _with(**{REL_CMP: _cmp(-0.015, 0.01)}), True, [], None),
    ("relative: worse, but within the margin", _with(**{REL_CMP: _cmp(-0.008, 0.001)}), True, [], None),
    (
        "fail slice",
        _with(**{"slices.0.comparison": _cmp(-0.10, 0.01)}),
        False,
        ["slice:carrier=AA"],
        "-0.1000",
    ),
    (
        "slice: worse point estimate, but noise",
        _with(**{"slices.0.comparison": _cmp(-0.04, 0.02)}),
        True,
        [],
        None,
    ),
    ("ungated small slice is ignored", _with(**{"slices.1.candidate": 0.1}), True, [], None),
    (
        "fail invariance",
        _with(**{"behavioural.0.mean_abs_shift": 0.05, "behavioural.0.mean_abs_shift_se": 0.002}),
        False,
        ["behavioural:inv"],
        "0.0500",
    ),
    (
        "invariance: above tolerance, but noise",
        _with(**{"behavioural.0.mean_abs_shift": 0.025, "behavioural.0.mean_abs_shift_se": 0.01}),
        True,
        [],
        None,
    ),
    ("fail directional", _with(**{"behavioural.1.mean_shift": -0.02}), False, ["behavioural:dir"], "-0.0200"),
    (
        "directional: wrong way, but noise",
        _with(**{"behavioural.1.mean_shift": -0.01, "behavioural.1.mean_shift_se": 0.01}),
        True,
        [],
        None,
    ),
    (
        "missing behavioural result fails closed",
        _with(behavioural=[BASE["behavioural"][0]]),
        False,
        ["behavioural:dir"],
        "no result",
    ),
    (
        "behavioural result without its uncertainty fails closed",
        _with(**{"behavioural.1.mean_shift_se": None}),
        False,
        ["behavioural:dir"],
        "no result",
    ),
    (
        "first model: absolute only",
        _with(champion=None, **{"slices.0.comparison": _cmp(-0.5, 0.01)}),
        True,
        [],
        None,
    ),
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
    ("NaN metric fails closed", _with(**{AUC: float("nan")}), False, [ABS], "not"),
    ("missing paired comparison fails closed", _with(**{REL_CMP: None}), False, [REL], "not comparable"),
    (
        "NaN standard error fails closed",
        _with(**{"slices.2.comparison": _cmp(0.0, float("nan"))}),
        False,
        ["slice:origin=JFK"],
        "not comparable",
    ),
    (
        "broken predict contract: rejected on that criterion alone",
        _with(predict_contract={"passed": False, "stage": "holdout", "detail": "predict raised ValueError"}),
        False,
        [PC],
        "ValueError",
    ),
    ("no predict-contract record fails closed", _with(predict_contract=None), False, [PC], "fail closed"),
    (
        "fail latency",
        _with(latency={"rows": 1000, "candidate_ms": [400.0, 390.0], "champion_ms": [50.0, 60.0]}),
        False,
        ["latency:predict_time"],
        "x7.80",
    ),
    (
        "latency: ratio high but a few ms is timer noise",
        _with(latency={"rows": 10, "candidate_ms": [3.0], "champion_ms": [0.5]}),
        True,
        [],
        None,
    ),
    ("missing latency fails closed", _with(latency=None), False, ["latency:predict_time"], "no latency"),
    (
        "everything wrong: every failure listed",
        _with(
            **{
                AUC: 0.5,
                REL_CMP: _cmp(-0.15, 0.004),
                "slices.2.comparison": _cmp(-0.16, 0.004),
                "behavioural.1.mean_shift": -0.1,
            }
        ),
        False,
        [ABS, REL, "slice:origin=JFK", "behavioural:dir"],
        None,
    ),
]


@pytest.mark.decisions
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
    kinds = {c["kind"] for c in out["criteria"]}
    # every criterion is listed with its evidence: estimate, interval, margin, p-value
    for c in out["criteria"]:
        assert {"estimate", "interval", "margin", "p_value"} <= set(c["figures"]), c
    if PC in failed:
        assert kinds == {"predict_contract"}
        return
    assert {"predict_contract", "absolute", "behavioural"} <= kinds
    assert ("relative" in kinds) is (doc["champion"] is not None)


@pytest.mark.decisions
def test_holm_controls_the_family_not_each_slice() -> None:
    """A slice whose own p-value is below alpha still passes once the family is accounted for."""
    # harm p = Phi((d + 0.03) / 0.01) = 0.03 for d = -0.03 - 1.881 * 0.01
    doc = _with(**{"slices.0.comparison": _cmp(-0.04881, 0.01)})
    verdict = decide(doc, GATE, "classification")
    crit = next(c for c in verdict.criteria if c.name == "carrier=AA")
    assert crit.figures["p_value"] == pytest.approx(0.03, abs=1e-3)
    family = sum(c.kind in ("relative", "slice", "behavioural") for c in verdict.criteria)
    assert crit.figures["p_adjusted"] == pytest.approx(0.03 * family, abs=5e-3)
    assert verdict.passed, verdict.failures


@pytest.mark.decisions
def test_criterion_tags_carry_the_evidence_within_mlflow_limits() -> None:
    from pipelines.core.registry import MAX_TAG_CHARS
    from pipelines.training.evaluate import criterion_tags

    verdict = decide(_with(**{"slices.0.comparison": _cmp(-0.10, 0.01)}), GATE, "classification")
    tags = criterion_tags(verdict)
    value = tags["gate.criterion.slice.carrier_AA"]
    assert value.startswith("fail est=-0.1 ci=[") and "margin=0.03" in value and "p_adj=" in value
    assert tags["gate.criterion.relative.roc_auc"].startswith("pass ")
    assert all(len(v) <= MAX_TAG_CHARS and len(k) <= 250 for k, v in tags.items())


def test_too_few_behavioural_checks_configured_fails_the_gate() -> None:
    gate = GATE.model_copy(update={"behavioural": GATE.behavioural[:1]})
    verdict = decide(BASE, gate, "classification")
    assert not verdict.passed
    assert verdict.failed_criteria == ["config:behavioural_checks"]
    assert "1 behavioural checks configured" in verdict.failures[0]


def test_regression_gate_uses_its_own_metric_and_direction() -> None:
    gate = GateConfig(
        regression=TaskGate(primary_metric="rmse", absolute={"r2": 0.2, "rmse": 60.0}),
        min_behavioural_checks=0,
    )
    doc = {
        "task": "regression",
        "predict_contract": {"passed": True, "stage": "holdout", "detail": "ok"},
        "candidate": {"metrics": {"r2": 0.35, "rmse": 58.0}},
        "champion": {
            "version": "1",
            "metrics": {"r2": 0.40, "rmse": 55.0},
            # rmse 58 vs 55 is *worse* by 3 (lower is better): evaluate stores the signed improvement
            "comparison": {
                "method": "paired_bootstrap",
                "rows": 700,
                "candidate": 58.0,
                "champion": 55.0,
                "improvement": improvement("regression", "rmse", 58.0, 55.0),
                "se": 0.5,
            },
        },
        "slices": [],
        "behavioural": [],
        "latency": LATENCY,
    }
    verdict = decide(doc, gate, "regression")
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
