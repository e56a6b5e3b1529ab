"""The one error of a model file that cannot be used: missing, unreadable, damaged or of another kind.

Both model files (``rating/model_file.py``, ``ranking/model.py``) raise it, and every reader (the CLI,
``recsys serve``, the assets, the release) catches it, so it lives below both models.
"""


class ModelFileError(ValueError):
    """The model file is missing, unreadable or not a recsys_assets model."""
