"""The shared kernel: what every component needs and none of them owns.

Layers, enforced by ``lint-imports`` (contracts in ``pyproject.toml``)::

    pipelines.cli, pipelines.replay          drive components from above
    pipelines.optimize
    pipelines.canary | pipelines.monitoring
    pipelines.quality | pipelines.training | pipelines.serving
    pipelines.data
    pipelines.core                           this package
    pipelines.config

The kernel holds one copy of each cross-cutting rule:

* :mod:`~pipelines.core.observability` — structured logs with bound ids, atomic JSON writes,
  idempotent event records (gate verdicts, releases, decisions);
* :mod:`~pipelines.core.alerts` — alerts to the log, the event store and a webhook;
* :mod:`~pipelines.core.errors` — the error base whose ``retryable`` flag decides whether an
  orchestrator tries again;
* :mod:`~pipelines.core.periods` — batch ids (``2013-04``, ``2013-W05``, ``2013-04-07``) and
  their intervals: the single regex of each shape and the id check that keeps paths inside the
  runtime root;
* :mod:`~pipelines.core.registry` — MLflow registry access: the client factory, the alias names,
  alias look-ups and tag helpers;
* :mod:`~pipelines.core.predlog` — the prediction-log store (schema, writer, queries);
* :mod:`~pipelines.core.gates` — the verdict types shared by the data gate, the evaluation gate
  and the canary;
* :mod:`~pipelines.core.contracts` — the adapter that turns typed task contracts (frozen
  dataclasses) into XCom-safe JSON and back.

Nothing here names a DAG or a task id: only ``dags/`` knows those.
"""
