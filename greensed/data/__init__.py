"""Data layer: DESED-style datasets, synthetic soundscapes, cached mel features.

The trainer needs only :func:`load_dataset` and :func:`to_model_input`.
"""

from greensed.data.desed import (
    Dataset,
    RowView,
    Subset,
    default_cache_dir,
    load_dataset,
    weak_split_names,
)
from greensed.data.features import to_model_input

__all__ = ["Dataset", "RowView", "Subset", "default_cache_dir", "load_dataset", "to_model_input",
           "weak_split_names"]
