"""What a finished experiment shows: the analyses behind each figure, the figures (each with the CSV
of its numbers), and the self-contained HTML report.

May import: every library subpackage (it is the last step of the data path); not ``tracking``.
"""
