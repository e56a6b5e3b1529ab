"""The ranking side of the recommender: top-N, the iALS ranking model, fold-in, explanations, metrics.

interactions.py  UserItems: who rated what (CSR), the seen-movie index
topn.py          blocked top-N and the most-popular baseline
ials.py          iALS fit (implicit), exact user solves (fold-in), explanations
model.py         RankingModel and its file, ranking_model.pth
metrics.py       NDCG, precision, recall, hit rate, coverage at k; paired noise
evaluate.py      rankers side by side; "beats most-popular" verdict
train.py         held-out fit + scores, then the published fit on everything
"""

from recsys_assets.core.ranking.evaluate import (
    Comparison,
    compare,
    evaluate_rankers,
    factor_ranker,
    popularity_ranker,
)
from recsys_assets.core.ranking.ials import (
    IALSModel,
    IALSParams,
    confidence,
    explain,
    fit_ials,
    solve_users,
)
from recsys_assets.core.ranking.interactions import UserItems, seen_matrix
from recsys_assets.core.ranking.metrics import (
    HeldOut,
    RankingScores,
    paired_gap,
    ranking_metrics,
)
from recsys_assets.core.ranking.topn import TopN, popularity_top_n, top_n

__all__ = [
    "Comparison",
    "HeldOut",
    "IALSModel",
    "IALSParams",
    "RankingScores",
    "TopN",
    "UserItems",
    "compare",
    "confidence",
    "evaluate_rankers",
    "explain",
    "factor_ranker",
    "fit_ials",
    "paired_gap",
    "popularity_ranker",
    "popularity_top_n",
    "ranking_metrics",
    "seen_matrix",
    "solve_users",
    "top_n",
]
