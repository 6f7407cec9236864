"""Simulators with known ground truth: cameras, specimens, acquisitions."""
