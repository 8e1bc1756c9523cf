"""Registers with known truth: presets calibrated to published figures.

Simulating a register and writing it ready to fit (``register``), the presets (``presets``),
and the check of simulated against published national figures (``calibration``).
"""
