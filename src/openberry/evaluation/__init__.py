"""Evaluation: `berry eval` runs, their record files, metrics and reports."""
