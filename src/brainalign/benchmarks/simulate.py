"""Simulated twins of the four Brain-Score language datasets, written in the real releases' formats, with
their ground truth.

The texts are the project's own story (``brainalign/data/story.txt``): its sentences become Pereira's
passages and topics, its 8-word sentence openings Fedorenko's sentences, its chunks Blank's and Futrell's
stories. What the recordings respond to is planted:

neural datasets (Pereira, Fedorenko, Blank)
    A *generator* model (``minilm`` by default) reads every presentation exactly as the benchmarks read
    models (:func:`brainalign.benchmarks.activations.presentation_activations`); its ``generator_layer``
    is standardised and projected onto ``n_latent`` random directions (the latent stimulus features). For
    Fedorenko's words, a repeated word's mean state is removed first: the electrodes follow what context
    adds to a word, not which word it is.
    Each responsive channel is a random linear mix of the latents plus independent noise, at a drawn
    correlation ``true_r`` between its noise-free signal and its response; other channels are noise. The
    truth: each channel's signal correlation (the per-channel ceiling a perfect model of the stimulus
    reaches), the generator and its layer. A model that carries the generator layer's information scores
    near the ceiling; an untrained architecture scores lower; a random embedding near 0.
reading times (Futrell)
    Each reader's time on a word is a reader offset plus ``rt_per_bit`` ms per bit of the generator LM's
    surprisal (``smollm2`` by default) plus ``rt_per_char`` ms per character plus noise; readers read a
    random subset of the stories, and a few fail the comprehension check. The truth: the noise-free times,
    and the reliability of the mean time over the readers (what the split-half ceiling estimates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.files import atomic_path, write_json

PEREIRA_PARTICIPANTS = ("P01", "M02", "M04", "M07", "M08", "M09", "M14", "M15")
BLANK_FROIS = ("LH_IFGorb", "LH_IFG", "LH_MFG", "LH_AntTemp", "LH_PostTemp", "LH_AngG",
               "RH_IFGorb", "RH_IFG", "RH_MFG", "RH_AntTemp", "RH_PostTemp", "RH_AngG")


@dataclass(frozen=True)
class BenchmarkSimulation:
    """The settings of the simulated benchmarks (params.yaml ``simulate_benchmarks``)."""

    seed: int = 0
    generator: str = "minilm"
    generator_layer: int = 4
    surprisal_generator: str = "smollm2"
    n_latent: int = 4
    blank_latent: int = 1
    true_r: tuple[float, float] = (0.3, 0.75)
    pereira_participants: int = 5
    pereira_voxels: tuple[int, int, int, int, int] = (120, 80, 40, 30, 60)  # languageLH, RH, MD, DMN, none
    fedorenko_electrodes: tuple[int, ...] = (47, 8, 9, 15, 18)
    fedorenko_responsive: float = 0.8
    blank_participants: int = 5
    blank_stories: int = 8
    blank_words: int = 250
    futrell_stories: int = 10
    futrell_words: int = 200
    futrell_readers: int = 40
    futrell_stories_per_reader: int = 6
    rt_per_bit: float = 25.0
    rt_per_char: float = 8.0
    rt_noise: float = 150.0
    batch_size: int = 16
    max_length: int = 256


def story_sentences() -> list[str]:
    """The project's story split into sentences (a closing quote stays with its sentence)."""
    text = files("brainalign.data").joinpath("story.txt").read_text(encoding="utf-8")
    parts = re.split(r"(?<=[.!?])[\"\u201d\u2019]?\s+", " ".join(text.split()))
    return [p.strip() for p in parts if p.strip()]


def story_words() -> list[str]:
    return " ".join(story_sentences()).split()


def latent_features(activations: np.ndarray, n_latent: int, rng: np.random.Generator) -> np.ndarray:
    """Standardised random projections of standardised features: (n_presentations, n_latent)."""
    features = np.asarray(activations, dtype=np.float64)
    features = (features - features.mean(0)) / np.where(features.std(0) > 0, features.std(0), 1.0)
    latent = features @ rng.standard_normal((features.shape[1], n_latent))
    return (latent - latent.mean(0)) / latent.std(0)


def channel_responses(latent: np.ndarray, responsive: np.ndarray, true_r: tuple[float, float],
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Responses of channels to latent features.

    Returns
    -------
    responses : ndarray of shape (n_presentations, n_channels), float32, z-scored per channel
    signal : ndarray of shape (n_presentations, n_channels), the noise-free part (0 for other channels)
    ceiling : ndarray of shape (n_channels,)
        Per channel the correlation of its signal with its response (0 for channels without signal).
    """
    n, k = latent.shape
    n_channels = responsive.size
    signal = latent @ rng.standard_normal((k, n_channels))
    signal = (signal - signal.mean(0)) / signal.std(0)
    noise = rng.standard_normal((n, n_channels))
    r = rng.uniform(true_r[0], true_r[1], n_channels)
    responses = np.where(responsive, r * signal + np.sqrt(1 - r ** 2) * noise, noise)
    responses = (responses - responses.mean(0)) / responses.std(0)
    signal = np.where(responsive, signal, 0.0)
    ceiling = np.array([np.corrcoef(signal[:, j], responses[:, j])[0, 1] if responsive[j] else 0.0
                        for j in range(n_channels)])
    return responses.astype(np.float32), signal.astype(np.float32), ceiling


def _generator_features(settings: BenchmarkSimulation, texts: list[str], groups: np.ndarray,
                        progress: bool) -> np.ndarray:
    from brainalign.benchmarks.activations import presentation_activations
    from brainalign.benchmarks.zoo import load_zoo_model

    model = load_zoo_model(settings.generator, seed=settings.seed)
    activations = presentation_activations(model, texts, groups, batch_size=settings.batch_size,
                                           max_length=settings.max_length, progress=progress)
    return np.asarray(activations[settings.generator_layer], dtype=np.float64)


def _truth(directory: Path, kind: str, settings: BenchmarkSimulation, channels: pd.DataFrame,
           ceiling: np.ndarray, **extra) -> None:
    """``channels.parquet`` (each channel the loader returns, with its true ceiling) and ``truth.json``
    (the median over those channels: what the benchmark's estimated ceiling estimates)."""
    with atomic_path(directory / "channels.parquet") as tmp:
        channels.assign(true_ceiling=ceiling).to_parquet(tmp, index=False)
    write_json(directory / "truth.json", {
        "kind": kind, "generator": settings.generator, "generator_layer": settings.generator_layer,
        "n_latent": settings.n_latent, "true_ceiling": float(np.median(ceiling)),
        "n_responsive": int((ceiling > 0).sum()), "n_channels": int(ceiling.size),
        "ranking": [settings.generator, f"{settings.generator}-untrained", "random"], **extra})


def pereira_texts(n_sentences: int = 384, per_passage: int = 4, passages_per_topic: int = 4
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sentences of 5-40 words from the story, in order: (sentences, 1-based passage, 1-based topic per passage)."""
    chosen = [s for s in story_sentences() if 5 <= len(s.split()) <= 40][:n_sentences]
    if len(chosen) < n_sentences:
        raise ValueError(f"the story has {len(chosen)} sentences of 5-40 words, fewer than {n_sentences}")
    passages = np.repeat(np.arange(1, n_sentences // per_passage + 1), per_passage)
    topics = np.repeat(np.arange(1, n_sentences // per_passage // passages_per_topic + 1), passages_per_topic)
    return chosen, passages, topics


def simulate_pereira(raw: Path, truth: Path, settings: BenchmarkSimulation, progress: bool = True,
                     texts: tuple[list[str], np.ndarray, np.ndarray] | None = None) -> None:
    """Pereira 2018 experiment 2 (384 sentences, 96 passages, 24 topics): ``<participant>/examples_384sentences.mat``.

    ``texts`` (sentences, 1-based passage of each, 1-based topic of each passage) replaces the story's, e.g. with
    the real experiment's sentences.
    """
    from brainalign.data.pereira import write_pereira

    rng = np.random.default_rng([settings.seed, 2018])
    sentences, passages, topics = texts if texts is not None else pereira_texts()
    n_passages, n_topics = int(np.max(passages)), int(np.max(topics))
    latent = latent_features(_generator_features(settings, sentences, passages, progress), settings.n_latent, rng)
    atlases = ("languageLH", "languageRH", "MD", "DMN")
    counts = settings.pereira_voxels
    n_voxels, shape = sum(counts), (16, 16, 16)
    frames, ceilings = [], []
    for participant in PEREIRA_PARTICIPANTS[: settings.pereira_participants]:
        responsive = np.arange(n_voxels) < counts[0] + counts[1]
        responses, _, ceiling = channel_responses(latent, responsive, settings.true_r, rng)
        bounds = np.cumsum((0,) + tuple(counts))
        # Two ROIs per atlas, the atlas's columns split in halves (1-based, as meta.roiColumns holds them).
        columns = {atlas: [part + 1 for part in np.array_split(np.arange(bounds[i], bounds[i + 1]), 2)]
                   for i, atlas in enumerate(atlases)}
        coords = np.column_stack(np.unravel_index(rng.choice(np.prod(shape), n_voxels, replace=False), shape))
        write_pereira(raw, participant, responses, sentences, passages,
                      [f"passage {p}" for p in range(1, n_passages + 1)], topics,
                      [f"topic {t}" for t in range(1, n_topics + 1)], columns, shape, coords)
        kept = responsive  # the language atlases' voxels, in column order: the loader's channels
        frames.append(pd.DataFrame({"subject": participant, "column": np.flatnonzero(kept) + 1}))
        ceilings.append(ceiling[kept])
    _truth(truth, "neural", settings, pd.concat(frames, ignore_index=True), np.concatenate(ceilings),
           atlases=["languageLH", "languageRH"])


def fedorenko_texts(n_sentences: int = 52, n_words: int = 8) -> list[str]:
    """Story sentences of at least 8 words, cut to their first 8, upper-case without punctuation (the
    release's style: "ALEX WAS TIRED SO HE TOOK A NAP")."""
    out = []
    for sentence in story_sentences():
        words = [re.sub(r"[^\w']", "", w).upper() for w in sentence.split()]
        words = [w for w in words if w]
        if len(words) >= n_words:
            out.append(" ".join(words[:n_words]))
        if len(out) == n_sentences:
            return out
    raise ValueError(f"the story has {len(out)} sentences of {n_words}+ words, fewer than {n_sentences}")


def simulate_fedorenko(raw: Path, truth: Path, settings: BenchmarkSimulation, progress: bool = True) -> None:
    """Fedorenko 2016 ECoG: ``ECoG_g_lang_v3.mat`` (electrodes x 416 words) and ``sentences.txt``."""
    from brainalign.data.fedorenko import write_fedorenko

    rng = np.random.default_rng([settings.seed, 2016])
    sentences = fedorenko_texts()
    words = [w for s in sentences for w in s.split()]
    groups = np.repeat(np.arange(len(sentences)), 8)
    features = _generator_features(settings, words, groups, progress)
    # The electrodes follow what the sentence context adds to a word, not the word's identity (the build-up of
    # meaning over a sentence that Fedorenko et al. report): each repeated word's mean state is removed.
    for word in set(words):
        rows = [i for i, w in enumerate(words) if w == word]
        if len(rows) > 1:
            features[rows] -= features[rows].mean(axis=0)
    latent = latent_features(features, settings.n_latent, rng)
    n = sum(settings.fedorenko_electrodes)
    responsive = rng.random(n) < settings.fedorenko_responsive
    responses, _, ceiling = channel_responses(latent, responsive, settings.true_r, rng)
    write_fedorenko(raw, responses.T, sentences)
    subjects = np.repeat([str(s) for s in range(1, len(settings.fedorenko_electrodes) + 1)],
                         settings.fedorenko_electrodes)
    _truth(truth, "neural", settings, pd.DataFrame({"subject": subjects, "electrode": np.arange(n)}), ceiling)


def story_chunks(n_stories: int, n_words: int, offset: int = 0) -> list[list[str]]:
    """``n_stories`` consecutive stretches of ``n_words`` story words each, every one ending a sentence
    where it can (a stretch is extended to the next sentence end, at most 40 words)."""
    words = story_words()[offset:]
    stories, start = [], 0
    for _ in range(n_stories):
        end = start + n_words
        while end < len(words) and end < start + n_words + 40 and not words[end - 1].endswith(
                (".", "!", "?", '."', '?"', '!"', ".\u201d")):
            end += 1
        if end > len(words):
            raise ValueError(f"the story has too few words for {n_stories} stories of {n_words}")
        stories.append(words[start:end])
        start = end
    return stories


def simulate_futrell(raw: Path, truth: Path, settings: BenchmarkSimulation, progress: bool = True) -> None:
    """Natural Stories self-paced reading: ``all_stories.tok``, ``processed_RTs.tsv``, ``processed_wordinfo.tsv``."""
    from brainalign.benchmarks.nextword import word_surprisal
    from brainalign.benchmarks.zoo import load_zoo_model
    from brainalign.data.futrell import write_futrell, wordinfo_from_reading_times

    rng = np.random.default_rng([settings.seed, 2018, 1])
    stories = story_chunks(settings.futrell_stories, settings.futrell_words)
    table = pd.DataFrame([{"word": w, "zone": z, "item": item} for item, words in enumerate(stories, 1)
                          for z, w in enumerate(words, 1)])
    model = load_zoo_model(settings.surprisal_generator, seed=settings.seed)
    surprisal = np.asarray(word_surprisal(model, table["word"].tolist(), table["item"].to_numpy(),
                                          progress=progress), dtype=np.float64)
    # A story's first word has no context for some tokenizers (NaN): the story's mean stands in.
    surprisal = np.where(np.isfinite(surprisal), surprisal, np.nanmean(surprisal))
    length = table["word"].map(lambda w: sum(c.isalnum() for c in w)).to_numpy(float)
    signal = settings.rt_per_bit * surprisal + settings.rt_per_char * length
    rows, offset_sd = [], 50.0
    for reader in range(settings.futrell_readers):
        offset = 350.0 + offset_sd * rng.standard_normal()
        for item in np.sort(rng.choice(np.arange(1, settings.futrell_stories + 1),
                                       settings.futrell_stories_per_reader, replace=False)):
            correct = int(rng.choice([3, 4, 5, 6], p=[0.05, 0.05, 0.4, 0.5]))
            words = np.flatnonzero(table["item"].to_numpy() == item)
            rt = offset + signal[words] + settings.rt_noise * rng.standard_normal(words.size)
            rows.append(pd.DataFrame({"WorkerId": f"A{reader:03d}SIM", "WorkTimeInSeconds": 600 + reader,
                                      "correct": correct, "item": item, "zone": table["zone"].to_numpy()[words],
                                      "RT": np.maximum(np.rint(rt), 1).astype(int),
                                      "word": table["word"].to_numpy()[words]}))
    reading_times = pd.concat(rows, ignore_index=True)
    write_futrell(raw, table, reading_times, wordinfo_from_reading_times(reading_times))
    kept = reading_times[(reading_times["RT"] > 100) & (reading_times["RT"] < 3000) & (reading_times["correct"] > 4)]
    n_readers = kept.groupby(["item", "zone"]).size().reindex(pd.MultiIndex.from_frame(table[["item", "zone"]]),
                                                               fill_value=0).to_numpy()
    noise = settings.rt_noise ** 2 + offset_sd ** 2
    read = n_readers > 0
    reliability = float(np.var(signal[read]) / (np.var(signal[read]) + np.mean(noise / n_readers[read])))
    frame = table.assign(signal=signal, surprisal=surprisal, n_readers=n_readers)
    with atomic_path(truth / "words.parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    write_json(truth / "truth.json", {"kind": "reading_times", "generator": settings.surprisal_generator,
                                      "true_ceiling": reliability, "rt_per_bit": settings.rt_per_bit,
                                      "rt_per_char": settings.rt_per_char, "rt_noise": settings.rt_noise,
                                      "reader_offset_sd": offset_sd})


def simulate_blank(raw: Path, truth: Path, settings: BenchmarkSimulation, progress: bool = True) -> None:
    """Blank 2014: ``<UID>_<Session>_preprocessed.mat`` per participant (12 fROIs x 8 stories, voxels x TRs)
    and ``stories_textgridsbyJeanne/<number>.TextGrid`` (word times)."""
    from brainalign.data.blank import FROIS, STORY_NUMBERS, assign_words, write_blank_participant, write_blank_textgrids

    rng = np.random.default_rng([settings.seed, 2014])
    names = [s for s, number in sorted(STORY_NUMBERS.items(), key=lambda x: x[1]) if number != 8][: settings.blank_stories]
    tr, fixation, shift = 2.0, 8.0, 4.0
    story_words, lengths, texts, groups, slots = {}, {}, [], [], []
    for story, words in zip(names, story_chunks(len(names), settings.blank_words, offset=500)):
        durations = 0.18 + 0.035 * np.array([len(w) for w in words]) + rng.uniform(0, 0.08, len(words))
        starts = np.concatenate([[0.3], 0.3 + np.cumsum(durations[:-1] + 0.03)])
        table = pd.DataFrame({"word": words, "time_start": starts, "time_end": starts + durations})
        story_words[story] = table
        n_trs = int(np.ceil((table["time_end"].iloc[-1] + fixation + shift) / tr)) + 2
        lengths[story] = n_trs
        assigned = assign_words(table["time_end"].to_numpy(), tr * (np.arange(n_trs) + 1) - fixation, shift)
        for index in np.unique(assigned[assigned >= 0]):
            texts.append(" ".join(np.asarray(words)[assigned == index]))
            groups.append(story)
            slots.append((story, int(index)))
    latent = latent_features(_generator_features(settings, texts, np.asarray(groups), progress), settings.blank_latent,
                             rng)
    write_blank_textgrids(raw, story_words)
    frames, ceilings = [], []
    for number in range(settings.blank_participants):
        uid = f"{101 + number}"
        responses, _, ceiling = channel_responses(latent, np.ones(len(FROIS), bool), settings.true_r, rng)
        timeseries = {}
        for story in names:
            rows = [i for i, (s, _) in enumerate(slots) if s == story]
            trs = [slots[i][1] for i in rows]
            courses = []
            for froi in range(len(FROIS)):
                course = rng.standard_normal(lengths[story])  # TRs without new words: noise
                course[trs] = responses[rows, froi]
                deviations = rng.standard_normal((4, lengths[story]))
                courses.append(course + deviations - deviations.mean(0))  # 4 voxels whose mean is the course
            timeseries[story] = courses
        write_blank_participant(raw, uid, "SIM", timeseries)
        frames.append(pd.DataFrame({"subject": uid, "region": list(FROIS)}))
        ceilings.append(ceiling)
    _truth(truth, "neural", settings, pd.concat(frames, ignore_index=True), np.concatenate(ceilings),
           stories=names)


#: The simulated twin of each benchmark data source: ``(raw_dir, truth_dir, settings, progress)``.
SIMULATIONS = {"pereira2018": simulate_pereira, "fedorenko2016": simulate_fedorenko,
               "blank2014": simulate_blank, "futrell2018": simulate_futrell}


def simulate_benchmarks(raw: str | Path, truth: str | Path, settings: BenchmarkSimulation,
                        sources: list[str] | None = None, progress: bool = True) -> list[str]:
    """Write every simulated twin (or those of ``sources``) under ``raw/<source>`` with truth under
    ``truth/<source>``, each directory atomically; returns the sources written."""
    written = []
    for source in sources or list(SIMULATIONS):
        with atomic_path(Path(raw) / source) as raw_tmp, atomic_path(Path(truth) / source) as truth_tmp:
            raw_tmp.mkdir(parents=True)
            truth_tmp.mkdir(parents=True)
            SIMULATIONS[source](raw_tmp, truth_tmp, settings, progress)
        written.append(source)
    return written
