"""From posterior draws to what is reported about each municipality.

Effects in months, draw by draw (``effects``); ranks and rank probabilities (``ranks``);
credible sets, tiers, triple-goal estimates and pairwise probabilities (``sets``); the
municipality and covariate tables (``tables``); plain-language statements (``statements``).
"""
