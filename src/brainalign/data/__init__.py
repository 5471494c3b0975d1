"""Recordings and what is made of them before any model sees them.

The :class:`~brainalign.data.recording.Recording` type; one loader (and writer) per source format
(``hp_fmri``, ``hp_meg``, ``own``, and the ``simulated`` experiment that writes those formats), registered
by name in :mod:`brainalign.data.sources`; MATLAB files (``matfile``); validation suites; the atlas of
the language network; trimming, detrending and folds; the prepared dataset on disk.
Stimulus-aligned ``Presentations`` from the Brain-Score language loaders, registered in ``BENCHMARK_SOURCES``.

May import: the base modules (``errors``, ``files``, ``registry``), ``stimuli``, and ``features`` (the
simulation draws its hidden features from an encoder's states).
"""
