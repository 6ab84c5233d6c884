"""Rebuild ``diabetes_visits.csv`` (committed; run only to regenerate it, no network needed).

scikit-learn's bundled diabetes data (442 patients, 10 baseline measurements, disease
progression one year later: a regression target), given a patient id and a visit time
spread over January-June 2023 with a fixed seed, so it can be cut into monthly batches.
It proves the template runs on a dataset that is not nycflights13 with only a YAML file
and an expectation suite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes

HERE = Path(__file__).resolve().parent


def build() -> pd.DataFrame:
    raw = load_diabetes(as_frame=True, scaled=False).frame
    rng = np.random.default_rng(20230101)
    start = pd.Timestamp("2023-01-01T00:00:00Z")
    hours = rng.integers(
        0, int((pd.Timestamp("2023-07-01T00:00:00Z") - start) / pd.Timedelta(hours=1)), len(raw)
    )
    visit = start + pd.to_timedelta(np.sort(hours), unit="h")
    df = pd.DataFrame(
        {
            "patient_id": [f"P{i:04d}" for i in range(1, len(raw) + 1)],
            "visit_time": visit.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "age": raw["age"].astype(int),
            "sex": raw["sex"].map({1.0: "1", 2.0: "2"}),
            "bmi": raw["bmi"],
            "bp": raw["bp"],
            "tc": raw["s1"],  # total serum cholesterol
            "ldl": raw["s2"],
            "hdl": raw["s3"],
            "tch": raw["s4"],  # total cholesterol / HDL
            "ltg": raw["s5"],  # log serum triglycerides
            "glu": raw["s6"],  # blood sugar
            "progression": raw["target"],
        }
    )
    return df


if __name__ == "__main__":
    out = HERE / "diabetes_visits.csv"
    build().to_csv(out, index=False)
    print(f"wrote {out}")
