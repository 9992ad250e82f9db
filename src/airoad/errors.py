"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""


class AiroadError(Exception):
    """A problem the user can fix; the message says what happened and how to fix it."""


class DatasetMissing(AiroadError):
    """A dataset is not in the local cache."""

    def __init__(self, name: str):
        super().__init__(f"dataset '{name}' is not downloaded yet: run `airoad data fetch {name}`")
        self.name = name


class ConfigError(AiroadError):
    """A `--set key=value` override names an unknown key or carries a bad value."""
