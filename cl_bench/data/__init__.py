"""Datasets loaded once into memory as tensors (no per-sample decoding in the training loop)."""
from cl_bench.data.tensors import DataSource, DataUnavailableError, TensorData, load_dataset, list_datasets, resolve_data_root

__all__ = ["DataSource", "DataUnavailableError", "TensorData", "load_dataset", "list_datasets", "resolve_data_root"]
