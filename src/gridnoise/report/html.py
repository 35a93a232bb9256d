"""Renders a report's sections (`gridnoise.report.sections`) as one self-contained page, `report.html`: the
HTML counterpart of `gridnoise.report.markdown`, plus interactive plotly figures read from the study's
saved files:

    forest plots     each run's paired difference from the baseline with its 95% interval, per
                     data set and compared metric (first, after the header)
    samples          each run's samples (first finished seed) over the data, per data set
    learned grids    each grid run's final grids (first finished seed) per data set, with a
                     slider over every timestep t and the data drawn over them

The page opens offline: plotly.js is inlined once, the PNG figures are data URIs, nothing is
fetched. Text blocks are short Markdown fragments; `fragment` converts the few constructs the
report uses (paragraphs, `-` lists, **bold**, *italic*, `code`, [links](url), backslash escapes).
"""

from __future__ import annotations

import base64
import json
import math
import re
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots
from plotly.utils import PlotlyJSONEncoder

from gridnoise import rundir
from gridnoise.data.datafile import extent_to_data
from gridnoise.files import write_text
from gridnoise.registry import FOREST, LOWER_IS_BETTER, metric_title
from gridnoise.report.blocks import ALPHA, Block, Figure, Report, Section, Table, fmt, verdict
from gridnoise.report.claims import family, primary_metric, study_tests
from gridnoise.report.colours import run_colours
from gridnoise.report.forest import HOLM_BAR, PLAIN_LINE, forest_rows
from gridnoise.report.run_figures import REASON_COLOUR, overlay_points
from gridnoise.report.sections import report_sections
from gridnoise.report.verdict import FIRST_SCREEN, FOREST_PREFIX, REPRODUCTION
from gridnoise.report.views import (
    CLAMPED_NOTE,
    SAMPLE_MARGIN,
    clamped_strips,
    clip_to_view,
    grid_view,
    sample_view,
)
from gridnoise.study.results import StudyResults

HTML_FILE = "report.html"
PLOT_POINTS = 1000  # data points and samples drawn per panel (a seeded subsample)
GRID_DIGITS = 5  # significant digits of grid values in the page
POINT_DIGITS = 3  # significant digits of point coordinates, relative to the largest coordinate
PANEL_COLUMNS = 4  # panels per row of a figure before it wraps
PANEL_HEIGHT = 330  # pixels per row of panels
GRID_COLOURS = "Viridis"
HOLM_BAR_WIDTH = 8  # pixels: the forest plots' Holm-compatible interval, a thick translucent bar
HOLM_BAR_OPACITY = 0.35
CLAMPED_PATTERN = {"shape": "/", "fgcolor": "#555555", "bgcolor": "rgba(128,128,128,0.2)", "size": 8}
CLIP_MARK = "\u25b2"  # samples beyond a panel's axes are drawn as this triangle at its edge
PLOT_CONFIG = {"responsive": True, "displaylogo": False}
STYLE = """body{font-family:system-ui,sans-serif;max-width:1250px;margin:0 auto;padding:0 1em 3em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}
code{background:#f3f3f3;padding:0 .2em}img{max-width:100%}figure{margin:1em 0}figcaption{color:#555}
.plot{width:100%;margin:.5em 0 1.5em}nav li{margin:.1em 0}"""


# -- Markdown fragments -------------------------------------------------------------------------

_CODE = re.compile(r"`([^`]+)`")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>])")
_LINK = re.compile(r"\[([^\]]+)\]\(((?:[^()\s]|\([^()\s]*\))+)\)")  # a URL may hold one level of (...)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_SAFE_URL = re.compile(r"^(https?://|mailto:|#|[\w./-]+$)", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*[-*] ")


def _link(match: re.Match) -> str:
    text, url = match.groups()
    return f'<a href="{url}">{text}</a>' if _SAFE_URL.match(url) else text


def _text(part: str) -> str:
    """Markdown outside code spans as HTML: backslash escapes kept literal, links, bold, italic."""
    literals: list[str] = []

    def protect(m: re.Match) -> str:
        literals.append(escape(m.group(1)))
        return f"\x00{len(literals) - 1}\x00"

    s = escape(_ESCAPED.sub(protect, part))
    s = _BOLD.sub(r"<strong>\1</strong>", _LINK.sub(_link, s))
    s = _ITALIC.sub(r"<em>\1</em>", s)
    return re.sub("\x00(\\d+)\x00", lambda m: literals[int(m.group(1))], s)


def inline(text: str) -> str:
    """One line of Markdown as HTML: code spans, backslash escapes, links, **bold** and *italic*;
    everything else is escaped."""
    # split() puts the insides of backtick pairs at the odd indices: literal code
    return "".join(f"<code>{escape(part)}</code>" if i % 2 else _text(part)
                   for i, part in enumerate(_CODE.split(text)))


def fragment(text: str) -> str:
    """A Markdown fragment (paragraphs a blank line apart; a paragraph of `- ` lines is a list) as HTML."""
    out = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = para.splitlines()
        if lines and all(_LIST_ITEM.match(line) for line in lines):
            out.append("<ul>" + "".join(f"<li>{inline(_LIST_ITEM.sub('', line))}</li>" for line in lines) + "</ul>")
        elif lines:
            out.append(f"<p>{inline(' '.join(line.strip() for line in lines))}</p>")
    return "\n".join(out)


# -- the report's blocks ------------------------------------------------------------------------

def table(t: Table) -> str:
    head = "".join(f"<th>{inline(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>\n" for row in t.rows)
    title = f"<h3>{inline(t.title)}</h3>\n" if t.title else ""
    return f"{title}<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def figure(f: Figure) -> str:
    """The PNG inlined as a data URI (the page needs no other file)."""
    path = Path(f.path)
    if not path.is_file():
        return f"<p>{escape(f.caption)}: figure missing ({escape(str(path))})</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(f.caption)}">'
            f"<figcaption>{escape(f.caption)}</figcaption></figure>")


def block(b: Block) -> str:
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, Figure):
        return figure(b)
    return fragment(b)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def section(s: Section, anchor: str | None = None, extra: str = "") -> str:
    """`<h2>` and the blocks (and `extra` HTML); a section with nothing to say is empty."""
    if s.title is None and not s.blocks and not extra:
        return ""
    heading = f'<h2 id="{anchor}">{inline(s.title)}</h2>\n' if s.title is not None else ""
    return f"<section>\n{heading}" + "\n".join([block(b) for b in s.blocks] + [extra]) + "\n</section>"


# -- numbers for the page -----------------------------------------------------------------------

def significant(values, digits: int = GRID_DIGITS) -> list:
    """`values` rounded to `digits` significant digits each, as (nested) lists of floats."""
    a = np.asarray(values, dtype=np.float64)
    magnitude = np.floor(np.log10(np.abs(a), out=np.zeros_like(a), where=a != 0))
    scale = 10.0 ** (digits - 1 - magnitude)
    return (np.round(a * scale) / scale).tolist()


def points_for_page(points: np.ndarray, n: int = PLOT_POINTS) -> tuple[list, list]:
    """x and y of at most `n` of `points` `(N, 2)` (seeded subsample, original order), rounded to
    POINT_DIGITS significant digits of the largest coordinate."""
    if len(points) > n:
        points = points[np.sort(np.random.default_rng(0).permutation(len(points))[:n])]
    largest = float(np.abs(points).max()) if len(points) else 1.0
    decimals = POINT_DIGITS - 1 - (math.floor(math.log10(largest)) if largest > 0 else 0)
    rounded = np.round(points.astype(np.float64), max(decimals, 0))
    return rounded[:, 0].tolist(), rounded[:, 1].tolist()


def _run_title(results: StudyResults, run: str) -> str:
    return f"{run} {results.label(run)}"


def _layout(**kwargs) -> dict:
    return {"template": "none", "margin": {"l": 60, "r": 20, "t": 70, "b": 50}, "hovermode": "closest",
            "font": {"size": 12}, **kwargs}


def _subplots(n: int, titles: list[str], **kwargs):
    """A plotly figure of `n` panels, PANEL_COLUMNS to a row."""
    cols = min(n, PANEL_COLUMNS)
    rows = math.ceil(n / cols)
    return make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.3 / rows, **kwargs), cols


def _axis_key(axis: str, k: int) -> str:
    return axis if k == 1 else f"{axis}{k}"


# -- interactive figures ------------------------------------------------------------------------

def forest_figure(results: StudyResults, metric: str, claims: dict | None = None) -> dict | None:
    """Each non-baseline run's paired difference from the baseline in `metric`, one panel per data
    set (`report.forest`): a thick translucent bar, the Holm-compatible interval, which excludes 0
    exactly when the marker is filled (significant after Holm's correction), and a thin line, the
    unadjusted 95% interval. A run without a value on a data set keeps its row, with the reason as
    an annotation (and on hover). None when no run has a value."""
    found = forest_rows(results, metric, claims)
    if not any(row.has_value for row in found.values()):
        return None
    datasets = list(results.datasets)
    runs = [r["name"] for r in results.runs if r["name"] != results.baseline]
    colours = run_colours(results.runs, results.baseline)
    fig, cols = _subplots(len(datasets), datasets, shared_yaxes=True, horizontal_spacing=0.03)
    lower = metric in LOWER_IS_BETTER
    in_legend: set[str] = set()
    for j, dataset in enumerate(datasets):
        where = {"row": j // cols + 1, "col": j % cols + 1}
        for run in runs:
            row, title, colour = found[(run, dataset)], _run_title(results, run), colours[run]
            if row.reason:
                fig.add_annotation(text=f"<i>{escape(row.reason)}</i>", x=0.02, xref="x domain", xanchor="left",
                                   y=title, yshift=-12 if row.has_value else 0, showarrow=False,
                                   font={"size": 10, "color": REASON_COLOUR}, **where)
            if row.test is None or not row.has_value:  # the row itself, so the reason has its place
                fig.add_trace(go.Scatter(x=[0.0], y=[title], mode="markers", marker={"opacity": 0}, showlegend=False,
                                         hovertemplate=f"{escape(title)} on {escape(dataset)}: {escape(row.reason)}"
                                                       "<extra></extra>"), **where)
                continue
            test, p = row.test, row.holm_p
            has_ci = not math.isnan(test.ci_lo)
            has_holm = not math.isnan(row.holm_lo)
            if has_holm:
                fig.add_trace(go.Scatter(x=[row.holm_lo, row.holm_hi], y=[title, title], mode="lines",
                                         name=HOLM_BAR, showlegend=False, hoverinfo="skip", opacity=HOLM_BAR_OPACITY,
                                         line={"color": colour, "width": HOLM_BAR_WIDTH}), **where)
            hover = (f"<b>{escape(title)}</b> on {escape(dataset)}<br>"
                     f"{metric}: run - baseline = {fmt(test.mean_diff)}"
                     + (f"<br>95% interval [{fmt(test.ci_lo)}, {fmt(test.ci_hi)}]" if has_ci else "")
                     + (f"<br>Holm-compatible interval [{fmt(row.holm_lo)}, {fmt(row.holm_hi)}]" if has_holm else "")
                     + f"<br>seeds {test.n}, p = {fmt(test.p_value)}, Holm p = {fmt(p)}<br>{verdict(test, p, lower)}")
            fig.add_trace(go.Scatter(
                x=[test.mean_diff], y=[title], mode="markers", name=title,
                legendgroup=run, showlegend=run not in in_legend, hovertemplate=hover + "<extra></extra>",
                marker={"color": colour, "size": 11 if row.significant else 9, "line": {"width": 2, "color": colour},
                        "symbol": "circle" if row.significant else "circle-open"},
                error_x={"type": "data", "symmetric": False, "visible": has_ci, "color": colour, "thickness": 1,
                         "array": [test.ci_hi - test.mean_diff if has_ci else 0],
                         "arrayminus": [test.mean_diff - test.ci_lo if has_ci else 0]}), **where)
            in_legend.add(run)
    fig.add_vline(x=0, line={"color": "#666", "dash": "dash", "width": 1}, row="all", col="all")
    titles = [_run_title(results, r) for r in runs]
    fig.update_yaxes(categoryorder="array", categoryarray=titles[::-1], showgrid=True, gridcolor="#eee",
                     automargin=True)  # room for the runs' names
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    better = "lower" if lower else "higher"
    rows = math.ceil(len(datasets) / cols)
    fig.update_layout(_layout(
        title={"text": f"{metric_title(metric)} ({family(results, metric)}): run - baseline, mean over seeds "
                       f"({better} is better; filled: significant, Holm p < {ALPHA})<br>{HOLM_BAR}; {PLAIN_LINE}",
               "font": {"size": 14}},
        height=160 + rows * max(200, 45 * len(runs)), showlegend=True, legend={"orientation": "h", "y": -0.12}))
    return fig.to_plotly_json()


def _data_points(cache: dict, dataset: str, cfg) -> np.ndarray | None:
    """The data drawn behind samples and over grids (`plots.overlay_points`), once per data set."""
    key = (dataset, cfg.training_data_seed)
    if key not in cache:
        cache[key] = overlay_points(dataset, cfg.training_data_seed, cfg.data)
    return cache[key]


def samples_figure(results: StudyResults, dataset: str, cache: dict) -> dict | None:
    """Each run's samples (first finished seed, PLOT_POINTS of them) over the data (faint grey), one
    panel per run, axes linked and spanning the data's extent plus a margin (`views.sample_view`), so a
    diverging sampler does not set them: its samples beyond are triangles at the edge (hover: where they
    are), counted in the panel's title. None when no run finished on `dataset`. SVG scatter, not WebGL:
    a browser keeps only about 16 WebGL contexts per page and drops the oldest plots beyond them."""
    runs = [(r["name"], results.seeds(r["name"], dataset)[0]) for r in results.runs
            if results.seeds(r["name"], dataset)]
    if not runs:
        return None
    colours = run_colours(results.runs, results.baseline)
    dirs = {run: results.run_dir(run, dataset, seed) for run, seed in runs}
    samples = {run: rundir.read_samples(d) for run, d in dirs.items()}
    data = {run: _data_points(cache, dataset, rundir.read_config(d)) for run, d in dirs.items()}
    view = sample_view(data[runs[0][0]], list(samples.values()))
    clipped = {run: clip_to_view(s, view) for run, s in samples.items()}
    titles = []
    for run, seed in runs:
        beyond = int((~clipped[run][0]).sum())
        note = f"<br>{beyond} of {len(samples[run])} beyond the axes, clipped ({CLIP_MARK})" if beyond else ""
        titles.append(f"{_run_title(results, run)} (seed {seed}){note}")
    fig, cols = _subplots(len(runs), titles, shared_xaxes="all", shared_yaxes="all", horizontal_spacing=0.04)
    for j, (run, _) in enumerate(runs):
        where = {"row": j // cols + 1, "col": j % cols + 1}
        if (points := data[run]) is not None:
            x, y = points_for_page(points)
            fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name="data", legendgroup="data", showlegend=j == 0,
                                     hoverinfo="skip", marker={"color": "#bbbbbb", "size": 3, "opacity": 0.5}),
                          **where)
        inside, edge = clipped[run]
        x, y = points_for_page(samples[run][inside])
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=_run_title(results, run),
                                 marker={"color": colours[run], "size": 3, "opacity": 0.6},
                                 hovertemplate="x=%{x}, y=%{y}<extra>%{fullData.name}</extra>"), **where)
        if len(edge):  # the same subsample of both: points_for_page picks by count
            ex, ey = points_for_page(edge)
            tx, ty = points_for_page(samples[run][~inside])
            fig.add_trace(go.Scatter(x=ex, y=ey, mode="markers", name=f"{_run_title(results, run)}: beyond the axes",
                                     customdata=list(zip(tx, ty)), cliponaxis=False,
                                     marker={"color": colours[run], "size": 8, "symbol": "triangle-up",
                                             "line": {"width": 0.5, "color": "black"}},
                                     hovertemplate="clipped; at x=%{customdata[0]}, y=%{customdata[1]}"
                                                   "<extra>%{fullData.name}</extra>"), **where)
    fig.update_xaxes(range=list(view[:2]))
    fig.update_yaxes(range=list(view[2:]))
    rows = math.ceil(len(runs) / cols)
    fig.update_layout(_layout(title={"text": f"{dataset}: samples (colour) over the data (grey); axes: the data's "
                                             f"extent + {SAMPLE_MARGIN:.0%}", "font": {"size": 14}},
                              height=100 + rows * PANEL_HEIGHT, legend={"orientation": "h", "y": -0.1}))
    return fig.to_plotly_json()


def grid_figure(results: StudyResults, run: str, dataset: str, cache: dict) -> dict | None:
    """A grid run's final grids on `dataset` (first finished seed), one heatmap per grid at its real
    extent (x along the horizontal, y up), the data over them, and a slider over every timestep;
    one colour range for all grids and timesteps. The axes span the data too (`views.grid_view`),
    the region outside the grid hatched (points there are clamped into the edge cells) and the
    grid's extent outlined. None for a run without grids."""
    seeds = results.seeds(run, dataset)
    snapshot = rundir.final_snapshot(results.run_dir(run, dataset, seeds[0])) if seeds else None
    if snapshot is None:
        return None
    cfg = rundir.read_config(snapshot.parent.parent)
    _, grids, extent = rundir.read_grid_snapshot(snapshot, cfg)
    xmin, xmax, ymin, ymax = extent_to_data(extent, cfg.data.shift, cfg.data.scale)
    data = _data_points(cache, dataset, cfg)
    view = grid_view((xmin, xmax, ymin, ymax), data)
    strips = clamped_strips((xmin, xmax, ymin, ymax), view)
    labels = list(grids)
    T = next(iter(grids.values())).shape[0]
    lo = min(float(g.min()) for g in grids.values())
    hi = max(float(g.max()) for g in grids.values())
    values = {label: significant(np.swapaxes(g, 1, 2)) for label, g in grids.items()}  # z[t] = grid[t].T: rows are y
    titles = [f"{label.replace('_', ' ')}: g in [{float(g.min()):.4g}, {float(g.max()):.4g}]"
              for label, g in grids.items()]
    fig, cols = _subplots(len(labels), titles, horizontal_spacing=0.08)
    for j, label in enumerate(labels):
        n = grids[label].shape[1]
        dx, dy = (xmax - xmin) / n, (ymax - ymin) / n
        fig.add_trace(go.Heatmap(z=values[label][0], x0=xmin + dx / 2, dx=dx, y0=ymin + dy / 2, dy=dy,
                                 coloraxis="coloraxis", name=label,
                                 hovertemplate="x=%{x:.3g}, y=%{y:.3g}<br>g=%{z:.5g}<extra>" + label + "</extra>"),
                      row=j // cols + 1, col=j % cols + 1)
    for j in range(len(labels) if strips else 0):  # after the heatmaps: the frames replace traces 0..len-1
        where = {"row": j // cols + 1, "col": j % cols + 1}
        sx: list[float | None] = []
        sy: list[float | None] = []
        for x0, x1, y0, y1 in strips:  # one closed outline per strip, None between them
            sx += [x0, x1, x1, x0, x0, None]
            sy += [y0, y0, y1, y1, y0, None]
        fig.add_trace(go.Scatter(x=sx, y=sy, mode="lines", fill="toself", fillpattern=CLAMPED_PATTERN,
                                 fillcolor="rgba(0,0,0,0)", line={"width": 0}, name=CLAMPED_NOTE,
                                 legendgroup="clamped", showlegend=j == 0, hoverinfo="skip"), **where)
        fig.add_shape(type="rect", x0=xmin, x1=xmax, y0=ymin, y1=ymax, line={"color": "black", "width": 1,
                                                                              "dash": "dash"}, **where)
    for j in range(len(labels) if data is not None else 0):
        assert data is not None
        x, y = points_for_page(data)
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name="data", legendgroup="data", showlegend=j == 0,
                                 hoverinfo="skip", marker={"color": "#e8000b", "size": 2, "opacity": 0.3}),
                      row=j // cols + 1, col=j % cols + 1)
    for j in range(1, len(labels) + 1):  # square cells at the grid's real extent, the view over the data
        fig.layout[_axis_key("yaxis", j)].update(scaleanchor=_axis_key("x", j), constrain="domain",
                                                 range=list(view[2:]))
        fig.layout[_axis_key("xaxis", j)].update(constrain="domain", range=list(view[:2]))
    animate = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    steps = [{"method": "animate", "label": str(t), "args": [[str(t)], animate]} for t in range(T)]
    play = {"mode": "immediate", "fromcurrent": True, "frame": {"duration": 150, "redraw": True},
            "transition": {"duration": 0}}
    rows = math.ceil(len(labels) / cols)
    fig.update_layout(_layout(
        title={"text": f"{_run_title(results, run)} on {dataset}: learned noise scales g "
                       f"(seed {seeds[0]}, step {rundir.snapshot_step(snapshot)})"
                       + (f"<br>hatched: {CLAMPED_NOTE}" if strips else ""),
               "font": {"size": 14}},
        height=190 + rows * 380, coloraxis={"colorscale": GRID_COLOURS, "cmin": lo, "cmax": hi,
                                            "colorbar": {"title": {"text": "g"}}},
        legend={"orientation": "h", "y": -0.3},
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "t = "}, "pad": {"t": 40},
                  "font": {"color": "rgba(0,0,0,0)"}, "x": 0.12, "len": 0.88}],  # tick labels hidden: T of them
        updatemenus=[{"type": "buttons", "direction": "left", "x": 0, "y": 0, "xanchor": "left", "yanchor": "top",
                      "pad": {"t": 52}, "showactive": False,
                      "buttons": [{"label": "play", "method": "animate", "args": [None, play]},
                                  {"label": "pause", "method": "animate", "args": [[None], animate]}]}]))
    payload = fig.to_plotly_json()
    payload["frames"] = [{"name": str(t), "traces": list(range(len(labels))),
                          "data": [{"type": "heatmap", "z": values[label][t]} for label in labels]}
                         for t in range(T)]
    return payload


# -- the page -----------------------------------------------------------------------------------

def _script_json(obj: Any) -> str:
    """JSON for inside a <script>: no `</` that could close it."""
    return json.dumps(obj, cls=PlotlyJSONEncoder, separators=(",", ":")).replace("</", "<\\/")


def plot_div(payload: dict, div_id: str) -> str:
    """A div drawn by plotly.js from a figure's JSON (data, layout and, when present, its frames);
    each plot's promise goes into `window.gridnoisePlots`."""
    call = (f'Plotly.newPlot("{div_id}",{_script_json(payload["data"])},{_script_json(payload["layout"])},'
            f"{json.dumps(PLOT_CONFIG)})")
    if payload.get("frames"):
        call += f".then(function(gd){{return Plotly.addFrames(gd,{_script_json(payload['frames'])});}})"
    return f'<div id="{div_id}" class="plot"></div>\n<script>gridnoisePlots.push({call});</script>'


def interactive_sections(results: StudyResults, primary: str, claims: dict | None = None
                         ) -> list[tuple[Section, str]]:
    """(section, its plot divs) for the secondary metrics' forest plots (the `primary` one is on the first
    screen), the samples and the learned grids. A one-seed study has no forest plots."""
    cache: dict = {}
    recorded = results.metric_names() if results.max_seeds() >= 2 else []
    forests = [(m, forest_figure(results, m, claims)) for m in FOREST if m in recorded and m != primary]
    samples = [samples_figure(results, d, cache) for d in results.datasets]
    grids = [grid_figure(results, r["name"], d, cache) for r in results.runs for d in results.datasets]
    found = [(Section(SECONDARY_FORESTS, [
                 "Each run's mean paired difference from the baseline (run - baseline on the same seeds), per data "
                 "set; the dashed line is no difference. Filled markers are significant after Holm's correction at "
                 f"{ALPHA} over every secondary metric x run x data set. The thick bar is the Holm-compatible interval "
                 "(it excludes 0 exactly when the marker is filled), the thin line the unadjusted 95% t-interval. A "
                 "run without a value says why; hover for values."
                 if any(f for _, f in forests) else "No run to compare with the baseline."]),
              [f for _, f in forests if f is not None]),
             (Section("Samples (interactive)", [
                 f"Up to {PLOT_POINTS} samples of each run's first finished seed over {PLOT_POINTS} data points; "
                 "the panels of a data set share their axes (zoom one, zoom all), which span the data's extent with "
                 f"a margin: samples beyond them are triangles ({CLIP_MARK}) at the edge, hover for where they are."]),
              [f for f in samples if f is not None]),
             (Section("Learned grids (interactive)", [
                 "Each grid run's final grids (first finished seed) at their real extent, x along the horizontal; "
                 "the slider (or play) steps through every timestep t with one colour range for all of them; "
                 f"red: {PLOT_POINTS} data points. The axes span the data too: hatched, outside the grid's extent "
                 "(dashed), points are clamped into the edge cells. Hover for g."]),
              [f for f in grids if f is not None])]
    out = []
    for k, (s, payloads) in enumerate(found):
        if (k == 0 or k == 2) and not payloads:
            continue  # one seed, or no secondary metric; no grid run
        out.append((s, "\n".join(plot_div(p, f"plot-{k}-{i}") for i, p in enumerate(payloads))))
    return out


SECONDARY_FORESTS = "Secondary metrics at a glance (interactive)"
REPLACED_FIGURES = ("generated_images.png",)  # PNGs the page's interactive plots show instead (and forest_*,
REPLACED_DIRS = ("final_grids",)                # final_grids/*), left out to keep the page small


def without_replaced(s: Section) -> Section | None:
    """A section without the PNG figures an interactive plot replaces; None for the secondary forest
    plots' section, which the interactive forest plots replace whole."""
    def replaced(b: Block) -> bool:
        if not isinstance(b, Figure):
            return False
        path = Path(b.path)
        return path.name in REPLACED_FIGURES or path.parent.name in REPLACED_DIRS or path.stem.startswith(FOREST_PREFIX)

    if s.title != FIRST_SCREEN and any(isinstance(b, Figure) and Path(b.path).stem.startswith(FOREST_PREFIX)
                                       for b in s.blocks):
        return None
    return Section(s.title, [b for b in s.blocks if not replaced(b)])


def render(report: Report, results: StudyResults) -> str:
    """The whole page, in the report's order: header, the first screen (its forest plot interactive),
    the secondary metrics' interactive forest plots, the report's other sections, samples and grids."""
    primary, _ = primary_metric(results)
    sections = [static for s in report.sections if (static := without_replaced(s)) is not None]
    head = sections.pop(0) if sections and sections[0].title is None else Section(None)
    first = [sections.pop(0)] if sections and sections[0].title in (FIRST_SCREEN, REPRODUCTION) else []
    claims = study_tests(results)  # once for every forest plot
    primary_forest = forest_figure(results, primary, claims) if first and first[0].title == FIRST_SCREEN else None
    interactive = interactive_sections(results, primary, claims)
    forests = [(s, divs) for s, divs in interactive if s.title == SECONDARY_FORESTS]
    ordered = [(s, plot_div(primary_forest, "plot-primary") if primary_forest else "") for s in first]
    ordered += forests + [(s, "") for s in sections] + [x for x in interactive if x not in forests]
    return page(report.title, head, ordered)


def static_page(report: Report) -> str:
    """A report with no interactive figure as a page: its untitled first section as the header."""
    sections = list(report.sections)
    head = sections.pop(0) if sections and sections[0].title is None else Section(None)
    return page(report.title, head, [(s, "") for s in sections])


def page(title: str, head: Section, ordered: list[tuple[Section, str]]) -> str:
    """The self-contained page: `head` under the title, a table of contents, then each section with
    its extra HTML (an interactive figure's div), plotly's script inlined."""
    anchors: list[str] = []
    for s, _ in ordered:
        base = slug(s.title or "")
        anchors.append(base if base not in anchors else f"{base}-{len(anchors)}")
    toc = "".join(f'<li><a href="#{a}">{inline(s.title)}</a></li>' for (s, extra), a in zip(ordered, anchors)
                  if s.title is not None and (s.blocks or extra))
    body = "\n".join(section(s, a, extra) for (s, extra), a in zip(ordered, anchors))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n<title>{escape(title)}</title>\n<style>{STYLE}</style>\n'
            f"<script>{get_plotlyjs()}</script>\n<script>window.gridnoisePlots = [];</script>\n</head>\n<body>\n"
            f"<h1>{inline(title)}</h1>\n{section(head)}\n<nav><ul>{toc}</ul></nav>\n{body}\n"
            "<script>Promise.all(window.gridnoisePlots).then(function () {"
            'document.body.setAttribute("data-plots-ready", String(window.gridnoisePlots.length));});</script>\n'
            "</body>\n</html>\n")


def write_html_report(results: StudyResults, dest: str | Path, figures: list[Path],
                      report: Report | None = None) -> Path:
    """Write `dest/report.html` from a study's saved results (`report`: its sections, when already
    built), every figure inlined."""
    report = report if report is not None else report_sections(results, figures)
    return write_text(Path(dest) / HTML_FILE, render(report, results))
