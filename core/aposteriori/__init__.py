"""A posteriori per-pixel normalisation (Afanasyev et al.) and Fourier ring correlation."""
