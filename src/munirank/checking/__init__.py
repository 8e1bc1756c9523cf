"""Is the fit to be trusted: convergence, predictive checks and alternative models.

The convergence gate (``diagnostics``), Kaplan-Meier against posterior predictive survival
and completion (``predictive``), and alternative baselines and effect distributions compared
by LOO with rank and prior sensitivity (``alternatives``, the ``check`` command).
"""
