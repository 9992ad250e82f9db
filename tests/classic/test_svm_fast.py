"""The svm graders run again on the fast SVC (airoad.classic.svm_fast), so the readable
reference and its faster twin are held to the same tests. A platform test: it is not in the
catalog's tests list, and a learner's file is never graded by it."""

from __future__ import annotations

from test_svm import *  # noqa: F403 (the same tests, collected again in this module)

REFERENCE = "airoad.classic.svm_fast"
