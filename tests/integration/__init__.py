"""Integration tier: real DAG runs, real GX / MLflow / Evidently on real months."""
