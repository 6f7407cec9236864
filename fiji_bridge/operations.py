"""Command-line operations contributed by the Fiji bridge (``camcorr fiji ...``)."""
OPERATIONS = []
