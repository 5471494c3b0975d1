"""Language-model representations: loading encoders offline (packaged, local, cached or untrained),
their features for word windows, and their attention.

May import: the base modules, ``stimuli``, and ``finetuning.model`` (a head input is what a brain
model's head reads).
"""
