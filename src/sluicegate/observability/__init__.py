"""Metrics, the access log, traces and the log format."""
