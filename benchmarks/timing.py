"""Shared timing helper for the benchmark scripts (imported as a sibling module)."""

from __future__ import annotations

import statistics
import time


def race_fit_predict(make_ours, make_lib, Xtr, ytr, Xte, repeats: int = 7):
    """Median fit+predict seconds of two model factories, run alternately so that machine
    load hits both sides alike; returns (ours_s, lib_s, ours_pred, lib_pred)."""
    times: dict[str, list[float]] = {"ours": [], "lib": []}
    preds = {}
    for i in range(repeats):
        order = (("ours", make_ours), ("lib", make_lib))
        for name, make in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            preds[name] = make().fit(Xtr, ytr).predict(Xte)
            times[name].append(time.perf_counter() - start)
    return (
        statistics.median(times["ours"]),
        statistics.median(times["lib"]),
        preds["ours"],
        preds["lib"],
    )
