"""The release wing: everything between a fitted candidate and the live pair.

One home for *when a model may go live* and *how it goes live*, for the rating model and the ranking
model alike. The release imports the models; the models never import the release.

    gates.py            the rules on the candidate alone (finite, beats its baseline): RULES, Verdict
    decision.py         the promotion decision against the published model (size, evidence, lineage)
    lineage.py          same export, re-keyed users, or a new lineage: what can be compared
    rating_evidence.py  the rating model scored beside the published one (held-back, fresh, folded in)
    ranking_evidence.py the ranking model likewise
    candidate.py        what a model asset hands over (Candidate) and gets back (Outcome); MODEL_FILES
    registry.py         publish (record, then one switch), the pair rule, repair, rollback
    live.py             the live pointer (live.json): the pair that is live, switched atomically
    history.py          the kept versions of each model (models/<name>/vNNNN.pth + .json)
    versions_table.py   the kept versions as rows (the model_versions asset, recsys models)

A model asset's shape: train -> ``registry.publish(candidate, verdict.publish)`` -> checks and metadata.
"""
