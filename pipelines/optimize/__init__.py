"""Optimization phase: tuning, latency/cost-aware model choice, capacity, cost & energy, scorecard.

Every figure these steps report is measured on the pipeline's own data and
records (validated batches, the prediction log, MLflow runs, event records, the
Airflow metadata DB). When a figure cannot be measured the report says why
("skipped because ...", "not enough data") instead of printing a number.
"""
