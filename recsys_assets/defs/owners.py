"""Who owns the pipeline's assets (shown in the UI and used by alerting): one list, imported by every asset module."""

OWNERS = ["team:recsys"]
