"""Hamamatsu Flash4.0 synchronous-readout charge carryover: calibration and correction."""
