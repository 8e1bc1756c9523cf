"""From a user's files to validated episodes.

The spec (``spec``: what the columns mean, the model and sampling settings, loaded from TOML),
reading tables of any supported format (``read``), checking them with one clear message per
problem (``validate``), and building the episodes dataset with named dimensions that every
later stage reads (``episodes``).
"""
