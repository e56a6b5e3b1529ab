"""The exposure limit: no movie in more than a share of the users' lists, kept by the users who rank it highest.

Without it a few acclaimed movies fill everyone's list (Shawshank for one user in four on ml-latest-small). The
limit is a filter, like the lists' other rules (:func:`choose.kept`): a movie is *left out* of the lists of the
users who rank it lowest until at most ``share`` of the users list it; nothing is moved above a movie it scored
lower. Which users keep it: those who rank it highest in their own list (its position; the score breaks ties),
so a movie stays where it leads and leaves where it trails. The limits are per movie, computed once over the
users' ranked pools (:func:`exposure_limits`, on the published model) and stored with the model, so one user's
list (``recsys recommend``, the server, a new user) is the same as the batch's.

A limit only ever rises while it is computed: leaving a movie out lets the next ones in, which may then pass
their own share and get a limit in turn, until no movie does (a few rounds). Users whose claims tie exactly at a
movie's limit all keep it (identical lists, such as most popular's, are not split at random).
"""

import numpy as np

from recsys_assets.core.ranking.choose import kept, well_rated

MAX_EXPOSURE = 0.10  # the default: no movie in more than a tenth of the lists
SHARES = (1.0, 0.25, 0.15, 0.10, 0.07, 0.05, 0.03)  # the points of the NDCG-against-coverage curve


def pool(k: int) -> int:
    """How many ranked movies a list of ``k`` is chosen from (the lists' rules leave some out)."""
    return max(5 * k, k + 40)


def ordered(movies: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per row, the order that ranks a pool by score, ties by more ratings (``counts`` per movie) first."""
    return np.lexsort((-counts[np.maximum(movies, 0)], -scores.astype(np.float64)), axis=1)


def claims(scores: np.ndarray) -> np.ndarray:
    """How strongly each user holds each pooled movie: its position in the user's ranked pool (earlier is
    stronger), ties at one position by the score; float64, comparable across users."""
    scores = np.asarray(scores, dtype=np.float64)
    position = np.broadcast_to(np.arange(scores.shape[-1], dtype=np.float64), scores.shape)
    return -position + 0.5 / (1.0 + np.exp(-np.clip(np.nan_to_num(scores, neginf=-50.0), -50.0, 50.0)))


def admitted(movies: np.ndarray, scores: np.ndarray, limits: np.ndarray | None) -> np.ndarray:
    """Whether each pooled movie is within its exposure limit for this user (True everywhere without limits)."""
    if limits is None:
        return np.ones(movies.shape, dtype=bool)
    return (movies >= 0) & (claims(scores) >= limits[np.maximum(movies, 0)])


def exposure_limits(
    movies: np.ndarray,
    scores: np.ndarray,
    passes: np.ndarray,
    n_movies: int,
    share: float,
    k: int,
    *,
    rounds: int = 50,
) -> np.ndarray:
    """Per movie, the weakest claim (:func:`claims`) that keeps it in a list, so that at most ``share`` of the
    users (rows of the ranked pools ``movies``/``scores``) list it among their ``k``; -inf for a movie without a
    limit. ``passes``: the pooled movies the lists' other rules keep; a list short of movies that pass every
    rule is filled with movies within their limit first (:func:`choose.kept`'s ``then``), so the limit is the
    last rule to give way."""
    if not 0 < share <= 1:
        raise ValueError(f"the exposure share must be in (0, 1], got {share}")
    limits = np.full(n_movies, -np.inf)
    users = len(movies)
    cap = max(1, int(np.floor(share * users)))
    if share >= 1 or users == 0:
        return limits
    strength = claims(scores)
    rows = np.arange(users)[:, None]
    for _ in range(rounds):
        within_limit = (movies >= 0) & (strength >= limits[np.maximum(movies, 0)])
        listed = kept(passes & within_limit, k, then=within_limit)
        within = within_limit[rows, listed]
        shown, held = movies[rows, listed][within], strength[rows, listed][within]
        over = np.flatnonzero(np.bincount(shown, minlength=n_movies) > cap)
        if not len(over):
            break
        pick = np.isin(shown, over)
        shown, held = shown[pick], held[pick]
        order = np.lexsort((-held, shown))
        shown, held = shown[order], held[order]
        first = np.searchsorted(shown, over)
        weakest_kept, strongest_left = held[first + cap - 1], held[first + cap]
        # halfway between the two, so that one user's list, scored alone, lands on the same side as in the batch
        # despite rounding
        raised = (weakest_kept + strongest_left) / 2
        if (raised <= limits[over]).all() or (weakest_kept == strongest_left).all():
            break  # only exact ties at the limits are left over: they stay together
        limits[over] = raised
    return limits


def exposure_curve(
    parts, weights, seen, held, users: np.ndarray, *, k: int, min_ratings: int, shares=SHARES
) -> list[dict]:
    """What each exposure share costs and gains: the lists of ``users`` under the blend ``weights`` of ``parts``
    (a fit that never saw ``held``), with the evidence rule (``min_ratings``) and the limits computed over these
    users at each of ``shares``, scored on ``held``. One row per share: NDCG@k, coverage, top-100 share and the
    most-shown movie's share."""
    from recsys_assets.core.ranking.blend import blend_top_n_many
    from recsys_assets.core.ranking.metrics import ranking_metrics

    counts = seen.movie_counts()
    top = blend_top_n_many(parts, [weights], seen, users, pool(k))[0]
    rows = np.arange(len(users))[:, None]
    order = ordered(top.movies, top.scores, counts)
    movies, scores = top.movies[rows, order], top.scores[rows, order]
    passes = well_rated(movies, counts, min_ratings)
    out = []
    for share in shares:
        limits = exposure_limits(movies, scores, passes, len(counts), share, k)
        within_limit = admitted(movies, scores, limits)
        lists = movies[rows, kept(passes & within_limit, k, then=within_limit)]
        metrics = ranking_metrics(lists, users, held, k, counts).metrics
        out.append(
            {
                "max_exposure": float(share),
                f"ndcg_at_{k}": metrics[f"ndcg_at_{k}"],
                "coverage": metrics["coverage"],
                "top100_share": metrics.get("top100_share", 0.0),
                "max_movie_share": metrics.get("max_movie_share", 0.0),
            }
        )
    return out
