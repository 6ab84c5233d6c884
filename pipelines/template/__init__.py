"""The template's own tools: ``mlops init`` (a starting config derived from a data file) and
``mlops config check`` (whether each stage can act with a config on its data).

Both sit above every component they judge (they read the data layer and every config section),
below the drivers (the replay runs the check before a demo). Import from this package.
"""

from pipelines.template.check import DataProfile, Finding, check, exit_code, profile_data, report, stage_lines

__all__ = ["DataProfile", "Finding", "check", "exit_code", "profile_data", "report", "stage_lines"]
