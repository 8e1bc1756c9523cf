"""The established method, reproduced: observed minus expected with stars and a cut-off.

The AKF-style frequentist benchmark on the same episodes (``frequentist``), reanalysis of a
published observed-minus-expected table (``published``), and the two methods side by side
(``comparison``, the ``compare`` command).
"""
