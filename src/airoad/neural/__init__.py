"""Phase 3 deep learning: neural networks from scratch and the PyTorch workflow."""
