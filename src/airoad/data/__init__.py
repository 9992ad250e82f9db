"""Offline datasets: `load(name)` returns NumPy / pandas objects from the local cache."""

from airoad.data.store import all_datasets, fetch, get, load

__all__ = ["all_datasets", "fetch", "get", "load"]
