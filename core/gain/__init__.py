"""Blind residual gain (Sorzano et al.), a posteriori normalisation (Afanasyev et al.), FRC."""
