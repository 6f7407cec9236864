"""Streamed statistics over dask arrays, chunk by chunk, optionally on a dask cluster."""
