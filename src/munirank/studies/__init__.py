"""Evidence about the method: simulation studies and benchmarks.

Replicated simulation studies of both methods against the truth on dask (``replicates``, the
``study`` command), how often the ranking statements hold (``statements``, the
``study-statements`` command), and speed and scale figures (``bench``).
"""
