"""Training: configs, image and feature caches, the epoch loop, checkpoints and `fit`."""
