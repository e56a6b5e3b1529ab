"""The ranking side of the recommender: the candidates, top-N, fold-in, reasons, metrics.

interactions.py  UserItems: who rated what (CSR), the seen-movie index
topn.py          blocked top-N and the most-popular baseline
params.py        IALSParams, ItemItemParams, the capacity candidates, the file name (no PyTorch)
ials.py          iALS fit (implicit), exact user solves (fold-in), explanations
itemitem.py      EASE and RP3beta: sparse movie x movie weights
blend.py         one scorer for iALS, item-item, popularity and their mixes (Weights, Components)
choose.py        the candidate and the diversity penalty, chosen on an inner split
exposure.py      the exposure limit (no movie in more than a share of the lists) and its curve
similarity.py    "because you rated" reasons and similar movies
model.py         RankingModel and its file, ranking_model.pth
metrics.py       NDCG, precision, recall, hit rate, coverage at k; paired noise
evaluate.py      rankers side by side; "beats most-popular" verdict
train.py         held-out fit + scores, then the published fit on everything
"""

from recsys_assets._lazy import lazy_exports

# names are imported on first use, so ``recsys_assets.core.ranking.params`` does not pay for PyTorch
_EXPORTS = {
    "Comparison": "evaluate",
    "HeldOut": "metrics",
    "IALSModel": "ials",
    "IALSParams": "params",
    "RankingScores": "metrics",
    "TopN": "topn",
    "UserItems": "interactions",
    "compare": "evaluate",
    "confidence": "ials",
    "evaluate_rankers": "evaluate",
    "explain": "ials",
    "factor_ranker": "evaluate",
    "fit_ials": "ials",
    "paired_gap": "metrics",
    "popularity_ranker": "evaluate",
    "popularity_top_n": "topn",
    "ranking_metrics": "metrics",
    "seen_matrix": "interactions",
    "solve_users": "ials",
    "top_n": "topn",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
