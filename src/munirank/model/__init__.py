"""The partially pooled Weibull model and how its posterior is computed.

Building the PyMC model from episodes (``build``), the compiled cumulative-hazard kernel and its
gradient (``kernel``), nutpie's cached compilation (``nutpie_compile``), sampling with NUTS
(``sampling``: the only caller of ``pm.sample``) and the nested Laplace approximation
(``laplace``).
"""
