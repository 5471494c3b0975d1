"""What the participants read, as models consume it: word windows per TR, the closed-class lexicon
and word properties, and windows tokenised once per dataset.

May import: the base modules (``errors``, ``files``).
"""
