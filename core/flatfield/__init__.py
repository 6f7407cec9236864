"""Flat-field estimation (measured profiles, empty tiles, empty z-ranges, BaSiCPy) and application."""
