"""sluicegate: one base URL and one key for streaming chat completions from many models."""

__version__ = "0.1.0"
