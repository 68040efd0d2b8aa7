"""Multi-input and multi-output PyTorch models on Omniglot, as a reproducible DVC pipeline."""
