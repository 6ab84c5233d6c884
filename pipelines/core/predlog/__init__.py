"""The prediction log: every served prediction, and the labels that arrive later.

The gateway writes here, monitoring, the canary analysis and optimization read here, so this
package owns the schema (the team's contract), the writer and every query; nothing else should
issue SQL against these tables.

* ``predictions``: request_id, entity_id (the dataset's id column, when the caller
  sent it), event_time (the dataset's event-time column: the *business* time a
  replay simulates), ts (wall clock, UTC ISO), variant (champion|canary),
  model_version, features (JSON), prediction, latency_ms, error (NULL when served).
* ``labels``: entity_id (primary key), label, event_time, available_at (when the
  label became known, in business time).

Modules: :mod:`.schema` (tables, time format, engines), :mod:`.encode` (the door: what each
field may hold), :mod:`.spool` (the local append-only spool an answer waits for),
:mod:`.writer` (spool -> database, dead letters, health), :mod:`.queries` (reads and label upserts).
"""

from pipelines.core.predlog.encode import (
    MAX_ENTITY_ID_CHARS,
    UnstorableError,
    entity_ids_text,
    event_times_text,
    request_id_text,
    safe_text,
)
from pipelines.core.predlog.queries import (
    LABELLED_COLUMNS,
    count_labels,
    count_predictions,
    feature_column,
    features_frame,
    logged_features,
    read_label_audit,
    read_labelled,
    read_labels,
    read_predictions,
    record_labels,
)
from pipelines.core.predlog.schema import (
    LABEL_AUDIT,
    LABELS,
    METADATA,
    PREDICTION_COLUMNS,
    PREDICTIONS,
    engine_for,
    log_url,
    to_utc_iso,
    utc_now_iso,
)
from pipelines.core.predlog.spool import SpoolError
from pipelines.core.predlog.writer import LoggedRequest, PredictionLogWriter, WriterStats

__all__ = [
    "LABELLED_COLUMNS",
    "LABELS",
    "LABEL_AUDIT",
    "MAX_ENTITY_ID_CHARS",
    "METADATA",
    "PREDICTIONS",
    "PREDICTION_COLUMNS",
    "LoggedRequest",
    "PredictionLogWriter",
    "SpoolError",
    "UnstorableError",
    "WriterStats",
    "count_labels",
    "count_predictions",
    "engine_for",
    "entity_ids_text",
    "event_times_text",
    "feature_column",
    "features_frame",
    "log_url",
    "logged_features",
    "read_label_audit",
    "read_labelled",
    "read_labels",
    "read_predictions",
    "record_labels",
    "request_id_text",
    "safe_text",
    "to_utc_iso",
    "utc_now_iso",
]
