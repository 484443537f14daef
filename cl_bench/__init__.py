"""cl-bench: a continual-learning benchmark suite built on Avalanche and Hydra."""
from cl_bench.third_party import import_quietly

__version__ = "0.1.0"

import_quietly()
