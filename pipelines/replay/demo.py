"""``make demo``: replay 2013 month by month through the project's real DAGs, on embedded defaults.

The replay is the loop the project exists for, run end to end on one machine with
SQLite and local files (no server to start by hand):

1. **Bootstrap** — the first ``training.window_batches`` + 1 batches (flights: January to April)
   go through ``standardize_data_quality``; the first model is trained on all but the last
   (January–March) and gated on the last (April) (``automate_training``), then released by
   ``automate_canary_release`` (no champion yet: pre-rollout check, then promotion).
2. **Every following month** — the month lands and is validated; if a challenger is waiting,
   ``automate_canary_release`` runs its traffic steps on the month's replayed requests
   (promotion or automatic rollback); the rest of the month's sample is served by the
   champion, labels arrive after the configured delay, ``automate_drift_monitoring`` judges
   the window and, when its policy fires, the training run it requested is executed.
3. **Summary** — a timeline of events, the split of wall time between task compute and
   orchestration, and an HTML report (``<paths.root>/reports/demo/summary.html``) with the monthly
   quality of the pipeline's champion against a never-retrained baseline, and the backtest
   (:mod:`pipelines.replay.backtest`: never retrain vs monthly gated retrains vs the policy,
   ``<paths.root>/reports/demo/backtest.json``).

Every DAG runs through ``dag.test()`` (see :mod:`pipelines.replay.orchestration`): the tasks are
the real ones, but Airflow does not start asset-triggered or ``TriggerDagRunOperator``
consumers under ``dag.test()``, so this script starts them with the same references the
scheduler would pass (the training conf is read back from the run the monitoring DAG queued).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
import warnings
from typing import Any

from pipelines.config import Settings, load_settings
from pipelines.replay.orchestration import DagRunRecord
from pipelines.replay.records import Replay
from pipelines.replay.report import write_summary

QUICK_MONTHS = 3  # months replayed after the bootstrap in --quick mode

# Demo pacing: the canary holds each step for seconds, not minutes, and the replayed traffic is
# a sample of each month. Set in the environment (so the DAG tasks see them) unless the user
# already set them; printed at start so nothing is hidden.
DEMO_OVERRIDES = {
    "MLOPS__CANARY__STEP_WINDOW_S": "3",
    "MLOPS__CANARY__ANALYSIS_INTERVAL_S": "1",
    "MLOPS__CANARY__STEP_TIMEOUT_S": "120",
    # No real callers here: each canary step drives itself with the month's replayed requests.
    "MLOPS__CANARY__REPLAY_TRAFFIC": "true",
}


def _run(replay: Replay, dags: dict[str, Any], dag_id: str, conf: dict[str, Any], **kw: Any) -> DagRunRecord:
    from pipelines.replay.orchestration import run_dag

    record = run_dag(dags[dag_id], conf, **kw)
    replay.runs.append(record)
    failed = [t for t, s in record.task_states.items() if s == "failed"]
    print(
        f"    dag {dag_id:<26} {record.state:<8} {record.wall_seconds:6.1f}s"
        + (f"  failed: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return record


def _validate(replay: Replay, dags: dict[str, Any], month: str) -> bool:
    from pipelines.data.validated import published

    record = _run(replay, dags, "standardize_data_quality", {"batch_id": month})
    batch = published(replay.settings, month)
    if batch is None:
        replay.note(month, "batch quarantined", f"see {replay.settings.paths.quarantine}")
        return False
    replay.note(month, "batch validated", f"{batch.rows} rows accepted, {batch.rows_quarantined} quarantined")
    return record.ok


def _train(replay: Replay, dags: dict[str, Any], month: str, conf: dict[str, Any]) -> str | None:
    """Run automate_training; return the new challenger version, if the gate passed one."""
    from pipelines.core.registry import challenger_version

    before = challenger_version(replay.settings)
    _run(replay, dags, "automate_training", conf)
    after = challenger_version(replay.settings)
    if after is not None and (before is None or after.version != before.version):
        replay.note(month, "challenger registered", f"v{after.version} ({conf.get('reason')})")
        return str(after.version)
    replay.note(
        month, "candidate rejected or unchanged", "no new @challenger (verdict in events/gate_verdict)"
    )
    return None


def _release(replay: Replay, dags: dict[str, Any], month: str, version: str) -> None:
    record = _run(replay, dags, "automate_canary_release", {"version": version})
    served = _champion(replay.settings)
    if record.ok and served == version:
        replay.note(month, "canary promoted", f"v{version} is @champion and answers on the gateway")
    else:
        replay.note(month, "canary rolled back", f"v{version} rejected; @champion stays v{served}")


def _champion(settings: Settings) -> str | None:
    from pipelines.core.registry import champion_version

    mv = champion_version(settings)
    return str(mv.version) if mv is not None else None


def _serve(replay: Replay, month: str, rows_per_request: int) -> None:
    """Replay the rest of the month (what the canary steps did not already send) to the gateway."""
    from pipelines.serving import rows_remaining, send_traffic

    remaining = rows_remaining(replay.settings, month)
    # Every row is served: whole requests, then one last request with the rest of the month.
    requests, rest = divmod(remaining, rows_per_request)
    for n_requests, size in ((requests, rows_per_request), (1 if rest else 0, rest)):
        if n_requests == 0:
            continue
        t0 = time.perf_counter()
        summary = send_traffic(replay.settings, batch_id=month, n_requests=n_requests, rows_per_request=size)
        replay.traffic_seconds += time.perf_counter() - t0
        replay.note(
            month,
            "traffic served",
            f"{summary['requests']} requests x {size} rows, {summary['labels_sent']} labels "
            f"fed back, variants {summary['variants']}",
        )


def _monitor(replay: Replay, dags: dict[str, Any], month: str) -> dict[str, Any] | None:
    """Run the monitoring DAG; return the training conf it queued, if its policy fired."""
    from pipelines.monitoring import history_table

    _run(replay, dags, "automate_drift_monitoring", {"window": month})
    decision = _queued_training_conf(month)
    row = next((h for h in history_table(replay.settings) if h["window"] == month), {})
    detail = (
        f"{row.get('status')}: drift share {row.get('drift_share')}, "
        f"important drift {row.get('important_drift')}, decision {row.get('action')}"
    )
    replay.note(month, "monitored", detail)
    if decision is not None:
        replay.note(month, "retrain requested", str(decision.get("reason")))
    return decision


def _queued_training_conf(month: str) -> dict[str, Any] | None:
    """The conf of the training run the monitoring DAG's TriggerDagRunOperator queued."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = (
            session.query(DagRun)
            .filter(DagRun.dag_id == "automate_training", DagRun.run_id == f"drift_retrain__{month}")
            .one_or_none()
        )
        return dict(run.conf) if run is not None and run.conf else None


def _config_check(settings: Settings) -> None:
    """``mlops config check`` first: no stage of the replay may go inert without saying so."""
    from pipelines.template import report

    lines, code = report(settings)
    print(f"== mlops config check ({settings.config_file})", flush=True)
    for line in lines:
        print(f"  {line}", flush=True)
    if code:
        raise SystemExit("config check: a stage contradicts the config (error above); fix it first")


def replay_year(quick: bool = False, rows_per_request: int = 100) -> Replay:
    # skops (MLflow's sklearn serializer) probes attributes of every loaded module, which makes
    # Airflow's lazy modules emit a deprecation warning per probe: hundreds of lines of noise.
    warnings.filterwarnings("ignore", module=r"skops\.")
    for key, value in DEMO_OVERRIDES.items():
        os.environ.setdefault(key, value)
    # The embedded gateway's admin API needs a token; a fresh random one per demo run, held only
    # in this process's environment (inherited by the gateway it starts), never written down.
    os.environ.setdefault("MLOPS_GATEWAY_ADMIN_TOKEN", secrets.token_urlsafe(32))
    # Label feedback has its own token (the gateway refuses label writes without one).
    os.environ.setdefault("MLOPS_LABELS_TOKEN", secrets.token_urlsafe(32))
    settings = load_settings()
    _config_check(settings)
    from pipelines.replay.orchestration import configure_embedded_airflow, init_metadata_db, load_dags

    home = configure_embedded_airflow(settings)
    replay = Replay(settings)
    months = list(settings.dataset.batches)
    window = settings.training.window_batches
    if len(months) < window + 2:
        raise SystemExit(
            f"the replay needs at least {window + 2} batches (training.window_batches={window} to "
            f"train, 1 holdout, 1 to serve); dataset.batches lists {len(months)}"
        )
    first_served = window + 1
    events = settings.paths.events
    last = first_served + QUICK_MONTHS if quick else len(months)

    print(f"== Airflow home {home} (SQLite), runtime root {settings.paths.root}", flush=True)
    print("== demo pacing: " + ", ".join(f"{k}={os.environ[k]}" for k in DEMO_OVERRIDES), flush=True)
    init_metadata_db()
    dags = load_dags()

    print(
        f"== bootstrap: validate {months[0]}..{months[window]}, train on {months[0]}..{months[window - 1]}, "
        f"gate on {months[window]}, release",
        flush=True,
    )
    for month in months[:first_served]:
        _validate(replay, dags, month)
    bootstrap_conf = {
        "reason": "bootstrap: first model",
        "window": months[:window],
        "holdout": months[window],
    }
    version = _train(replay, dags, months[window], bootstrap_conf)
    if version is None:
        raise SystemExit(f"the first model did not pass the gate; see {events / 'gate_verdict'}/")
    _release(replay, dags, months[window], version)
    replay.baseline_version = _champion(settings)
    if replay.baseline_version is None:
        raise SystemExit(f"the first model was not released; see {events / 'rollback'}/")
    pending: str | None = None

    for month in months[first_served:last]:
        print(f"== {month}", flush=True)
        if not _validate(replay, dags, month):
            continue
        if pending is not None:
            _release(replay, dags, month, pending)
            pending = None
        replay.champion_by_month[month] = _champion(settings) or "?"
        _serve(replay, month, rows_per_request)
        conf = _monitor(replay, dags, month)
        if conf is not None:
            pending = _train(replay, dags, month, conf)

    _backtest(replay, months[:last])
    path = write_summary(replay, months[:last])
    print_timeline(replay)
    print(f"\nsummary: {path}")
    return replay


def _backtest(replay: Replay, months: list[str]) -> None:
    """The three-strategy backtest on the replayed months (the summary shows its table)."""
    from pipelines.replay.backtest import default_path, format_table, run_backtest, write

    print("== backtest: never retrain vs monthly (gated) vs the policy", flush=True)
    t0 = time.perf_counter()
    doc = run_backtest(replay.settings, months)
    path = write(doc, default_path(replay.settings))
    print(format_table(doc), flush=True)
    replay.note(months[-1], "backtest", f"{path} ({time.perf_counter() - t0:.0f} s)")


def print_timeline(replay: Replay) -> None:
    wall = time.perf_counter() - replay.started
    dag_wall = sum(r.wall_seconds for r in replay.runs)
    compute = sum(r.compute_seconds for r in replay.runs)
    print("\n== timeline")
    for item in replay.timeline:
        if item["event"] not in {"batch validated", "traffic served", "monitored"}:
            print(f"  {item['month']}  {item['event']:<32} {item['detail']}")
    print("\n== wall time")
    print(f"  total                {wall:7.1f} s")
    print(f"  DAG runs             {dag_wall:7.1f} s over {len(replay.runs)} runs")
    print(f"  task compute         {compute:7.1f} s (sum of task durations)")
    print(f"  orchestration        {dag_wall - compute:7.1f} s ({(dag_wall - compute) / wall:5.1%} of total)")
    print(f"  replayed traffic     {replay.traffic_seconds:7.1f} s (outside DAGs: the users' requests)")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"replay only {QUICK_MONTHS} months after the bootstrap"
    )
    parser.add_argument(
        "--rows-per-request", type=int, default=100, help="rows per replayed request (whole month is sent)"
    )
    args = parser.parse_args(argv)
    try:
        replay_year(quick=args.quick, rows_per_request=args.rows_per_request)
    finally:
        from pipelines.serving import stop_gateway

        stop_gateway(load_settings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
