"""The rating model: biased matrix factorization with SVD++-style implicit feedback (``BiasedMF``), its SGD
kernels, the training loop, the per-epoch checkpoint, the model file and the report.

Nothing is imported here, so ``train_config`` and ``kernels`` (no PyTorch) load without PyTorch.
"""
