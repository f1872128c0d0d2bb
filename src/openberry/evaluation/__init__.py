"""Evaluation: `berry eval` runs, their record files, metrics and reports (issue 6)."""
