"""Phase 2 classical machine learning: scikit-learn-style estimators written from scratch."""
