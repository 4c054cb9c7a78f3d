"""Experiments: grids of training runs on one split, compared with paired bootstrap intervals."""
