"""Brain -> model decoding along fine-tuning trajectories (Gauthier & Levy 2019).

An encoder is fine-tuned on a task (:mod:`~brainalign.decoding.objectives`: GLUE, SQuAD 2.0, language
modelling and its variants) with a checkpoint every few steps (:mod:`~brainalign.decoding.trajectory`); every
stimulus sentence is encoded at every checkpoint (:mod:`~brainalign.decoding.encodings`); brain images are
decoded into each checkpoint's sentence space by ridge and scored by the rank of the true sentence
(:mod:`~brainalign.decoding.decoder`); representational similarity (:mod:`~brainalign.decoding.rsa`) and the
tests against the pretrained encoder (:mod:`~brainalign.decoding.statistics`) complete the analysis.
:mod:`~brainalign.decoding.simulate` writes Pereira-format images whose truth is known.

May import: the base modules, data, features, finetuning (its optimiser), nlu, benchmarks (the Pereira twin),
runs.
"""
