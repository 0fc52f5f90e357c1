"""The model library: finding local models and saying what each one is, without loading weights.

``catalog`` (where models are found), ``classify`` (what a folder is: its kind and engine format),
``checkpoints`` (single-file Stable Diffusion checkpoints), ``safetensors_files`` (headers, dtypes,
sizes), ``hf_cache`` (the Hugging Face cache). No torch at import.
"""

from studio.engines.library.catalog import ModelCatalog
from studio.engines.library.checkpoints import inspect_checkpoint
from studio.engines.library.classify import inspect_folder, library_problem

__all__ = ["ModelCatalog", "inspect_checkpoint", "inspect_folder", "library_problem"]
