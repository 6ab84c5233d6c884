"""The replay driver: runs the real DAGs month by month on embedded Airflow, then reports.

It sits above every component (it drives them the way a scheduler would), so no component
imports it. ``python -m pipelines.replay`` (``make demo``) is the entry point.
"""
