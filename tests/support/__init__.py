"""Helpers shared by the test tiers (importable as ``support.*``: ``tests/`` is on pytest's pythonpath)."""
