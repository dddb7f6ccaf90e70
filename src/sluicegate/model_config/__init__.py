"""The config every model entry has (`entry.py`) and its routing policies (`policies.py`):
read by both `routing` and `providers`, so it sits below them and imports neither."""
