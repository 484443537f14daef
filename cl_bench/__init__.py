"""cl-bench: a continual-learning benchmark suite built on Avalanche and Hydra."""

__version__ = "0.1.0"
