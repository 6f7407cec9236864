"""Quality report of a correction run: HTML page, PNG figures and a JSON of every QC number."""
