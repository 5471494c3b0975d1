"""Configuration: reading ``params.yaml`` (one section per stage) and checking what the user wrote.

May import: ``brainalign.errors``.
"""
