"""The self-contained HTML report of a fit folder (``html``) and its figures (``plots``).

Plots only draw what the posterior stage computed.
"""
