"""The template on a second, non-flights dataset: only a YAML file and a suite, no code change.

tests/data/second_dataset/ holds scikit-learn's diabetes data (regression) with patient ids and
visit times (see make_dataset.py), its pipeline.yaml and its expectation suite.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from pipelines.data.landing import current_landed, land_file
from pipelines.data.validated import load_batches, published
from pipelines.quality import PASSED, PASSED_WITH_WARNINGS, gate_paths, validate_batch

REPO = Path(__file__).resolve().parents[2]
# Columns that exist only in the flights dataset: pipelines/ code must get names from the contract.


def test_every_batch_lands_validates_and_publishes(second_dataset_settings, second_dataset_published) -> None:
    s = second_dataset_settings
    contract = s.dataset
    source = pd.read_csv(s.resolve(contract.source.path))
    assert [b["batch_id"] for b in second_dataset_published] == contract.batches
    assert all(b["status"] == PASSED for b in second_dataset_published)
    assert sum(b["rows"] for b in second_dataset_published) == len(source)  # every visit, once

    data = load_batches(s, contract.batches)
    assert list(data.columns) == contract.landed_columns
    assert data[contract.id.column].is_unique and len(data) == len(source)
    assert str(data[contract.event_time].dtype) == "datetime64[ns, UTC]"
    assert str(data[contract.target.name].dtype) == "float64"
    assert all(str(data[c].dtype) == "float64" for c in contract.features.numeric)
    assert set(data["sex"]) == {"1", "2"}
    merged = data.merge(source, on=contract.id.column, suffixes=("", "_src"))
    assert (merged[contract.target.name] == merged[f"{contract.target.name}_src"]).all()


def test_a_corrupted_row_is_split_off(second_dataset_settings, second_dataset_published, tmp_path) -> None:
    s = second_dataset_settings
    contract = s.dataset
    batch = contract.batches[2]
    original = current_landed(s, batch)
    frame = pd.read_csv(io.BytesIO(original.path.read_bytes()), dtype=str, keep_default_na=False)
    victim = frame[contract.id.column].iloc[7]
    frame.loc[7, "bmi"] = "-3"  # impossible body-mass index
    corrupted = tmp_path / "corrected.csv"
    frame.to_csv(corrupted, index=False)
    land_file(s, batch, corrupted, origin="test:corrupted-row")
    try:
        verdict = validate_batch(s, batch)
        assert verdict["status"] == PASSED_WITH_WARNINGS
        assert verdict["failed_expectations"] == ["expect_column_values_to_be_between(bmi)"]
        assert verdict["rows_quarantined"] == 1 and verdict["rows_accepted"] == len(frame) - 1
        landed = current_landed(s, batch)
        quarantined = pd.read_parquet(gate_paths(s, batch, landed.sha256).quarantine / "rows.parquet")
        assert quarantined[contract.id.column].tolist() == [victim]
        assert verdict["failures"][0]["sample_values"] == [-3.0]
        accepted = pd.read_parquet(published(s, batch).path)  # type: ignore[union-attr]
        assert victim not in set(accepted[contract.id.column])
    finally:  # restore the original version for other tests of the session (training uses it)
        land_file(s, batch, original.path, origin="test:restore")
        assert validate_batch(s, batch)["status"] == PASSED
