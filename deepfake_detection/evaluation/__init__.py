"""Metrics, thresholds, reports."""
