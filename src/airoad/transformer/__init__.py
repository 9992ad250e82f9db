"""Phase 4: attention and transformers from scratch in PyTorch, checked against torch."""
