"""The static HTML report: configuration, score summary, every figure and the MLflow run ids, in one file.

Nothing is loaded from the network: figures are embedded as base64 PNG, styles are inline, and the one
script (a self-check that every figure decoded and drew something) is inline too. The self-check writes
its verdict into ``<body data-figures-drawn="...">`` so a headless browser can read it back.
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from brainalign.errors import InputError
from brainalign.files import atomic_path


@dataclass
class Figure:
    """One figure of the report: a PNG on disk (its numbers in the CSV beside it) and a caption."""

    section: str
    title: str
    png: Path
    caption: str = ""


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.name, th.name { text-align: left; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
pre { background: #f7f7f7; padding: 0.8em; font-size: 0.8em; overflow-x: auto; }
.scroll { overflow-x: auto; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; }
"""

# Every figure must decode and hold more than a blank canvas: the fraction of pixels that differ from
# the top-left pixel (the background) must exceed 1 %.
_CHECK = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.querySelectorAll('img.figure'));
  var verdicts = images.map(function (img) {
    if (!img.complete || img.naturalWidth === 0) { return img.id + ':undecoded'; }
    var canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    var context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    var pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    var differ = 0;
    for (var i = 0; i < pixels.length; i += 4) {
      if (pixels[i] !== pixels[0] || pixels[i + 1] !== pixels[1] || pixels[i + 2] !== pixels[2]) { differ++; }
    }
    var share = differ / (pixels.length / 4);
    return img.id + ':' + (share > 0.01 ? 'drawn' : 'blank') + ':' + share.toFixed(4);
  });
  document.body.setAttribute('data-figures-drawn', verdicts.join(' '));
});
"""


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    head = "".join(f'<th class="name">{html.escape(str(c))}</th>' if i == 0 else f"<th>{html.escape(str(c))}</th>"
                   for i, c in enumerate(frame.columns))
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for i, value in enumerate(row):
            text = f"{value:.{digits}g}" if isinstance(value, float) else str(value)
            cells.append(f'<td class="name">{html.escape(text)}</td>' if i == 0 else f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            "</div>")


def summary_frame(summary: dict) -> pd.DataFrame:
    """``{model: {dataset: {subject: {metric: value}}}}`` (the score stage's metrics) as one table."""
    rows = [{"model": model, "dataset": dataset, "participant": subject, **values}
            for model, datasets in summary.items() for dataset, subjects in datasets.items()
            for subject, values in subjects.items()]
    return pd.DataFrame(rows)


def write_report(path: str | os.PathLike, *, title: str, configuration: dict, summary: dict,
                 figures: list[Figure], runs: list[dict], notes: list[str] | None = None,
                 tables: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write the report to ``path`` (atomically).

    Parameters
    ----------
    configuration : dict
        The experiment's parameters (``params.yaml`` as read), shown verbatim.
    summary : dict
        The score stage's metrics, ``{model: {dataset: {participant: {metric: value}}}}``.
    figures : list of Figure
        In order; grouped under their ``section`` headings.
    runs : list of dict
        MLflow runs to name: ``stage``, ``run_id``, ``status``, ``git_commit``.
    notes : list of str, optional
        Short paragraphs shown at the top (for example, that the recordings are simulated).
    tables : dict of str to DataFrame, optional
        Extra tables by heading (statistics of the comparisons).
    """
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in notes or []]
    parts.append("<h2>Score summary</h2>")
    parts.append("<p>Mean over channels (and over the best channels) of each participant, averaged over held-out "
                 "runs and initialisations; <code>accuracy</code> is the 20 vs 20 form that "
                 "<code>score.anchor</code> names.</p>")
    parts.append(_table(summary_frame(summary)))
    for heading, frame in (tables or {}).items():
        parts.append(f"<h2>{html.escape(heading)}</h2>{_table(frame)}")
    section = None
    for number, figure in enumerate(figures, 1):
        if not Path(figure.png).exists():
            raise InputError(figure.png, "figure", "a PNG written by the report stage", "no such file")
        if figure.section != section:
            section = figure.section
            parts.append(f"<h2>{html.escape(section)}</h2>")
        data = base64.b64encode(Path(figure.png).read_bytes()).decode("ascii")
        parts.append(f'<figure><img class="figure" id="figure-{number}" alt="{html.escape(figure.title)}" '
                     f'src="data:image/png;base64,{data}"><figcaption><b>{html.escape(figure.title)}.</b> '
                     f"{html.escape(figure.caption)} Numbers: <code>{html.escape(Path(figure.png).with_suffix('.csv').name)}"
                     "</code>.</figcaption></figure>")
    parts.append("<h2>MLflow runs</h2>")
    parts.append("<p>Open them with <code>brainalign ui</code> (binds to 127.0.0.1).</p>")
    parts.append(_table(pd.DataFrame(runs, columns=["stage", "run_id", "status", "git_commit"])))
    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(configuration, indent=2, sort_keys=False))}</pre>")
    document = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{_STYLE}</style></head><body>{''.join(parts)}<script>{_CHECK}</script></body></html>\n")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(document, encoding="utf-8")
    return Path(path)
