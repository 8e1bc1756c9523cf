"""Writing results: files, where they go, and what never leaves a secure server.

Reproducible CSV and JSON and the package versions (``files``), output folders written
completely or not at all and never over what munirank did not write (``destinations``), and
disclosure control: no per-person data, small counts blanked (``disclosure``).
"""
