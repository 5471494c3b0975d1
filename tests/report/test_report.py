"""The HTML report: self-contained, every figure checked in a real browser (headless Chromium)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from browser import dump_dom, figure_verdicts, screenshot  # noqa: E402
from PIL import Image  # noqa: E402

from brainalign.errors import InputError  # noqa: E402
from brainalign.report.html import Figure, summary_frame, write_report  # noqa: E402

SUMMARY = {"vanilla": {"fmri": {"1": {"accuracy_mean": 0.612, "r2_mean": 0.01}, "mean": {"accuracy_mean": 0.612,
                                                                                          "r2_mean": 0.01}}}}
RUNS = [{"stage": "score", "run_id": "0123456789abcdef", "status": "FINISHED", "git_commit": "cafe"}]


def _figures(tmp_path: Path) -> list[Figure]:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(np.arange(10), np.arange(10) ** 2)
    fig.savefig(tmp_path / "drawn.png")
    plt.close(fig)
    fig = plt.figure(figsize=(4, 3))  # nothing drawn: a white canvas
    fig.savefig(tmp_path / "blank.png")
    plt.close(fig)
    return [Figure("Curves", "a line", tmp_path / "drawn.png"), Figure("Curves", "nothing", tmp_path / "blank.png")]


def test_self_check_tells_drawn_from_blank(tmp_path):
    """The in-page check is not vacuous: a blank figure is reported blank, a drawn one drawn."""
    page = write_report(tmp_path / "index.html", title="t", configuration={"score": {"k": 20}}, summary=SUMMARY,
                        figures=_figures(tmp_path), runs=RUNS)
    assert figure_verdicts(dump_dom(page)) == {"figure-1": "drawn", "figure-2": "blank"}


def test_report_is_self_contained_and_complete(tmp_path):
    figures = _figures(tmp_path)[:1]
    page = write_report(tmp_path / "index.html", title="brainalign report", configuration={"score": {"k": 20}},
                        summary=SUMMARY, figures=figures, runs=RUNS, notes=["simulated recordings"],
                        tables={"Paired tests": pd.DataFrame([{"comparison": "b − a", "t": 3.5,
                                                                    "mean": -0.000142}])})
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert "0123456789abcdef" in text and "simulated recordings" in text and "0.612" in text
    assert "Paired tests" in text and "<td>3.5</td>" in text and '&quot;k&quot;: 20' in text
    assert "<td>-0.000142</td>" in text  # small differences keep their significant digits
    # The rendered page: the figure and the tables are on screen (the screenshot is far from uniform).
    shot = np.asarray(Image.open(screenshot(page, tmp_path / "shot.png")).convert("L"))
    assert shot.shape == (2400, 1280)
    assert (shot < 128).mean() > 0.002 and len(np.unique(shot)) > 20


def test_summary_frame_is_one_row_per_participant():
    frame = summary_frame(SUMMARY)
    assert frame.to_dict(orient="records") == [
        {"model": "vanilla", "dataset": "fmri", "participant": "1", "accuracy_mean": 0.612, "r2_mean": 0.01},
        {"model": "vanilla", "dataset": "fmri", "participant": "mean", "accuracy_mean": 0.612, "r2_mean": 0.01}]


def test_missing_figure_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="missing.png"):
        write_report(tmp_path / "index.html", title="t", configuration={}, summary=SUMMARY,
                     figures=[Figure("S", "gone", tmp_path / "missing.png")], runs=RUNS)
    assert not (tmp_path / "index.html").exists()


@pytest.mark.parametrize("value", ["yes", None])
def test_report_stage_refuses_a_map_screen_that_is_not_a_boolean(tmp_path, value):
    """One message naming the parameter, what was expected and what was found; nothing written."""
    from conftest import REPOSITORY, run_stage
    from experiments import set_params

    (tmp_path / "params.yaml").write_text((REPOSITORY / "params.yaml").read_text())
    set_params(tmp_path, {"report.map_screen": value})
    code, stderr = run_stage(tmp_path, "report")
    assert code != 0
    assert "report.map_screen: expected true or false, found" in stderr and repr(value) in stderr
    assert not (tmp_path / "reports").exists()
