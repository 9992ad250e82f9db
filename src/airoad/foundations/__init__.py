"""Phase 1 foundations: linear algebra, statistics, calculus and optimisation, from scratch."""
