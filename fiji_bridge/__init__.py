"""Fiji front end of camcorr: Fiji commands generated from the operation definitions, and Fiji
driven from Python with pyimagej."""
