"""brainalign: fine-tune and score language models against brain recordings.

The library is importable without DVC or MLflow; the pipeline in ``stages/`` and ``dvc.yaml`` and the
tracking in :mod:`brainalign.tracking` sit at its edges. The data path reads in module order::

    recordings -> windows -> folds -> encoders -> heads/training -> scoring -> figures
"""

__version__ = "0.1.0"
