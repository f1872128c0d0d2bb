"""Datasets: the registry of known benchmarks and the loader that maps their rows to `Example`s.

Import-light on purpose: ``berry data`` must start fast, so nothing here imports ``datasets``,
``pyarrow`` or torch at module level (the loader imports them only when it needs them). The
built-in arithmetic generator lives in `openberry.data.arithmetic`.
"""

from openberry.data.datasets import (
    DATA_DIR_ENV,
    DATASETS,
    DatasetError,
    DatasetSpec,
    LoadResult,
    count_rows,
    data_dir,
    get_spec,
    gsm8k_final_answer,
    hub_offline,
    load_examples,
    local_file,
)

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "DatasetError",
    "DatasetSpec",
    "LoadResult",
    "count_rows",
    "data_dir",
    "get_spec",
    "gsm8k_final_answer",
    "hub_offline",
    "load_examples",
    "local_file",
]
