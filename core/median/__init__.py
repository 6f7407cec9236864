"""Selective median filter for hot, noisy and aberrant-gain pixels (Amat et al. 2015)."""
