"""Probing a model and decoding the brain for the same linguistic features, and their alignment (seed 003).

``features`` reads and writes the release's ``story_features.mat`` (and a user's features table);
``annotate`` makes the project's own annotations of any text; ``segments`` groups the words of each TR and
pairs them with the images the hemodynamic delay puts them in; ``representations`` and ``probes`` are the
model side; ``frem`` is the brain side; ``alignment`` compares the two profiles; ``simulate`` writes a
simulated experiment with planted feature-to-region relations; ``experiment`` runs it all as tasks.

May import: the base modules, config, data, stimuli, features, metrics, ridge, runs, decoding (its statistics).
"""
