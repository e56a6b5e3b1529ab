"""The model file ``recommendation_model.pth``: what it holds and how it is written and read.

It is a ``torch.save`` dictionary of tensors, numbers, strings, lists and
dicts only, so it loads with ``torch.load(path, weights_only=True)`` and no
arbitrary object is ever unpickled.  Keys:

``model_state_dict``, ``optimizer_state_dict``, ``user_mapping`` and
``movie_mapping`` (raw id -> index), a PyTorch checkpoint's usual keys; plus
``format_version``, ``architecture``, ``config``, ``history``, ``metrics``,
``seen_indptr``/``seen_indices`` (the movies each user has rated, CSR) and
``movie_counts`` (ratings per movie, for cold-start fallbacks); ``heldback_user_ids``/
``heldback_movie_ids``/``heldback_ratings`` (the held-back evaluation set no published fit
trained on, ``core/heldback.py``) and ``evaluation_state_dict`` (the held-out fit on the
training split, which ``model_evaluation`` scores; the published weights are the refit's).
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recsys_assets.core import rating_scale
from recsys_assets.core.atomic import atomic_torch_save
from recsys_assets.core.model_errors import ModelFileError  # noqa: F401 - re-exported: the file's own error
from recsys_assets.core.weights_file import as_array, read_weights

if TYPE_CHECKING:
    from recsys_assets.core.heldback import HeldBack
    from recsys_assets.core.rating.report import ModelReport

FORMAT_VERSION = 1
REQUIRED_KEYS = ("model_state_dict", "user_mapping", "movie_mapping", "optimizer_state_dict")


def save_model_file(
    path: str | os.PathLike,
    report: "ModelReport",
    *,
    model_state: dict,
    optimizer_state: dict,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    config: dict,
    history: list[dict],
    heldback: "HeldBack | None" = None,
    evaluation_state: dict | None = None,
) -> Path:
    """Write the model file atomically (temp file, then rename).

    ``report`` gives the metrics and the seen-movie index (:class:`~recsys_assets.core.rating.report.ModelReport`)."""
    import torch

    payload = {
        "format_version": FORMAT_VERSION,
        "architecture": "biased_mf",
        "model_state_dict": {k: v.detach().cpu() for k, v in model_state.items()},
        "optimizer_state_dict": _to_cpu(optimizer_state),
        "user_mapping": {int(raw): i for i, raw in enumerate(user_ids)},
        "movie_mapping": {int(raw): i for i, raw in enumerate(movie_ids)},
        "config": dict(config),
        "history": [dict(h) for h in history],
        "metrics": dict(report.metrics),
        "seen_indptr": torch.from_numpy(np.ascontiguousarray(report.seen_indptr, dtype=np.int64)),
        "seen_indices": torch.from_numpy(np.ascontiguousarray(report.seen_indices, dtype=np.int32)),
        "movie_counts": torch.from_numpy(np.ascontiguousarray(report.movie_counts, dtype=np.int64)),
    }
    if heldback is not None:
        payload.update({k: torch.from_numpy(np.array(v, copy=True)) for k, v in heldback.arrays().items()})
    if evaluation_state is not None:
        payload["evaluation_state_dict"] = {k: v.detach().cpu() for k, v in evaluation_state.items()}
    return atomic_torch_save(payload, path)


def _to_cpu(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def load_model_file(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a model file with ``torch.load(weights_only=True)`` (tensors); clear errors for missing or foreign
    files. The training side's reader; :func:`read_model_file` reads the same file without PyTorch."""

    def torch_load(p: Path):
        import torch

        return torch.load(p, map_location=map_location, weights_only=True)

    return _validated(Path(path), torch_load)


def read_model_file(path: str | os.PathLike) -> dict:
    """:func:`load_model_file` without PyTorch (``core/weights_file.py``): numpy arrays for tensors, the same
    checks and errors. The read path's reader (``recsys recommend``, ``recsys serve``)."""
    return _validated(Path(path), read_weights)


def _validated(path: Path, reader) -> dict:
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}; materialize recommendation_model first")
    try:
        payload = reader(path)
    except Exception as exc:
        raise ModelFileError(f"{path} is not a readable model file: {exc}") from exc
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise ModelFileError(f"{path} is not a recsys_assets model file (expected keys {', '.join(REQUIRED_KEYS)})")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model file format {version!r}; this version reads {FORMAT_VERSION}")
    problem = payload_problem(payload)
    if problem:
        raise ModelFileError(f"{path} is damaged: {problem}")
    return payload


_WEIGHTS = ("user_factors.weight", "movie_factors.weight", "user_bias.weight", "movie_bias.weight", "global_mean")


def payload_problem(payload: dict) -> str | None:
    """What is wrong with a model file's contents (shapes, id mappings, finite weights, seen index), or None.
    Tensors may be PyTorch's or numpy arrays (either reader)."""
    state = payload["model_state_dict"]
    found = {k: as_array(state.get(k)) for k in _WEIGHTS} if isinstance(state, dict) else {}
    weights = {k: v for k, v in found.items() if v is not None}
    if len(weights) != len(_WEIGHTS):
        return f"model_state_dict needs the tensors {', '.join(_WEIGHTS)}"
    users, movies = payload["user_mapping"], payload["movie_mapping"]
    if not isinstance(users, dict) or not isinstance(movies, dict):
        return "user_mapping and movie_mapping must be dicts of raw id -> index"
    n_users, n_movies = len(users), len(movies)
    p, q = weights["user_factors.weight"], weights["movie_factors.weight"]
    if p.ndim != 2 or q.ndim != 2 or p.shape != (n_users, q.shape[1]) or q.shape[0] != n_movies:
        return f"factor shapes {tuple(p.shape)} and {tuple(q.shape)} do not match {n_users} users and {n_movies} movies"
    if weights["user_bias.weight"].shape != (n_users, 1) or weights["movie_bias.weight"].shape != (n_movies, 1):
        return "bias shapes do not match the mappings"
    for name in _WEIGHTS:
        if not bool(np.isfinite(weights[name].astype(np.float64)).all()):
            return f"{name} holds NaN or infinite values"
    for name, mapping, n in (("user_mapping", users, n_users), ("movie_mapping", movies, n_movies)):
        if sorted(mapping.values()) != list(range(n)):
            return f"{name} must map its ids onto 0..{n - 1} exactly once"
    return _seen_problem(payload, n_users, n_movies) or _extras_problem(payload, weights)


def _seen_problem(payload: dict, n_users: int, n_movies: int) -> str | None:
    """What is wrong with the seen-movie index or the movie counts, or None."""
    if "seen_indptr" in payload:
        indptr, indices = as_array(payload["seen_indptr"]), as_array(payload.get("seen_indices"))
        if indptr is None or indices is None:
            return "the seen-movie index (seen_indptr, seen_indices) is not a pair of tensors"
        if (
            indptr.ndim != 1
            or len(indptr) != n_users + 1
            or int(indptr[0]) != 0
            or int(indptr[-1]) != len(indices)
            or bool((indptr[1:] < indptr[:-1]).any())
        ):
            return "the seen-movie index (seen_indptr) does not match the users"
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_movies):
            return "the seen-movie index names movies outside the mapping"
    counts = payload.get("movie_counts")
    if counts is not None and as_array(counts) is None:
        return "movie_counts is not a tensor"
    counts = as_array(counts)
    if counts is not None and (len(counts) != n_movies or bool((counts < 0).any())):
        return "movie_counts does not match the movies"
    return None


def _extras_problem(payload: dict, state: dict) -> str | None:
    """What is wrong with the held-back set or the held-out fit's weights (``state``: the model's, as arrays), or None."""
    from recsys_assets.core.heldback import HeldBack

    try:
        HeldBack.from_payload(payload)
    except (ValueError, TypeError, AttributeError) as exc:
        return f"the held-back evaluation set is malformed ({exc})"
    evaluation = payload.get("evaluation_state_dict")
    if evaluation is None:
        return None
    for name in _WEIGHTS:
        tensor = as_array(evaluation.get(name)) if isinstance(evaluation, dict) else None
        if tensor is None or tensor.shape != state[name].shape:
            return f"evaluation_state_dict's {name} does not match the model's"
        if not bool(np.isfinite(tensor.astype(np.float64)).all()):
            return f"evaluation_state_dict's {name} holds NaN or infinite values"
    return None


def serving_fields(payload: dict) -> dict:
    """A loaded file's ``Recommender`` keywords besides the weights and ids: rating range, seen index,
    movie counts and ``info`` (config, metrics, history, the held-back set, the held-out fit's weights)."""
    from recsys_assets.core.heldback import HeldBack
    from recsys_assets.core.ranking.interactions import UserItems

    config = payload.get("config", {})
    seen = None
    if "seen_indptr" in payload:
        n_movies = len(payload["movie_mapping"])
        seen = UserItems(as_array(payload["seen_indptr"]), as_array(payload["seen_indices"]), None, n_movies)
    return {
        "rating_range": rating_scale.recorded(config),  # the scale the file was trained on
        "seen": seen,
        "movie_counts": as_array(payload["movie_counts"]) if "movie_counts" in payload else None,
        "info": {
            "config": config,
            "metrics": payload.get("metrics", {}),
            "history": payload.get("history", []),
            "heldback": HeldBack.from_payload(payload),
            "evaluation_state": payload.get("evaluation_state_dict"),
        },
    }


def check_same_data(payload: dict, ranking_info: dict | None, path) -> None:
    """Refuse a rating model and a ranking model trained on different data (their recorded fingerprints differ)."""
    mine = payload.get("config", {}).get("data_fingerprint")
    theirs = (ranking_info or {}).get("data_fingerprint")
    if mine and theirs and mine != theirs:
        raise ModelFileError(
            f"{path} and its ranking model come from different exports (data fingerprints {mine} and {theirs}); "
            "publish both from one run, or roll both back to one release (recsys models shows the pairs)"
        )
