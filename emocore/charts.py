"""Plotly figures for the dashboard and reports: pure functions of cache data, never shown here.

Every figure carries an explicit template (`plotly_white`; inside Streamlit the default template
would blacken exports) and a fixed colour per emotion, so the same emotion looks the same on every
chart. Timeline traces have invisible markers: Streamlit reports clicks on Plotly points only when
traces have markers, and each point carries its frame index in `customdata`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

TEMPLATE = "plotly_white"
EMOTION_COLOURS = {
    "angry": "#D55E00",
    "disgust": "#8C6D1F",
    "fear": "#7B4FA0",
    "happy": "#E69F00",
    "sad": "#0072B2",
    "surprise": "#CC79A7",
    "neutral": "#7F7F7F",
}
_FALLBACK = ("#009E73", "#56B4E9", "#F0E442", "#000000", "#999933", "#882255")


def colour(emotion: str, index: int = 0) -> str:
    return EMOTION_COLOURS.get(emotion, _FALLBACK[index % len(_FALLBACK)])


def _layout(fig: go.Figure, title: str, y_title: str, x_title: str, legend: str = "emotion") -> go.Figure:
    fig.update_layout(
        template=TEMPLATE, title=title, hovermode="closest", legend_title_text=legend,
        margin={"l": 60, "r": 20, "t": 60, "b": 50}, xaxis_title=x_title, yaxis_title=y_title,
    )
    return fig


def timeline_figure(
    title: str,
    times: np.ndarray,
    smoothed: np.ndarray,
    raw: np.ndarray,
    labels: Sequence[str],
    *,
    shots: Sequence[float] = (),
    peaks: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    explained: Sequence[float] = (),
    selected_s: float | None = None,
    emotions: Sequence[str] | None = None,
    show_raw: bool = False,
) -> go.Figure:
    """Every emotion over time: smoothed lines (clickable points), optional raw dots, shot
    boundaries, each emotion's peaks, the explained moments, and the selected moment."""
    fig = go.Figure()
    shown = [e for e in labels if emotions is None or e in emotions]
    for e in shown:
        j = labels.index(e)
        fig.add_trace(go.Scatter(
            x=times, y=smoothed[:, j], name=e, mode="lines+markers", legendgroup=e,
            line={"color": colour(e, j), "width": 2.5},
            # invisible markers: what makes a point clickable in st.plotly_chart
            marker={"size": 8, "opacity": 0}, selected={"marker": {"opacity": 0}},
            unselected={"marker": {"opacity": 0}},
            customdata=np.arange(len(times)),
            hovertemplate=f"{e}: %{{y:.2f}} at %{{x:.1f}} s<extra>frame %{{customdata}}</extra>",
        ))
        if show_raw:
            fig.add_trace(go.Scatter(
                x=times, y=raw[:, j], name=f"{e} (raw)", mode="markers", legendgroup=e, showlegend=False,
                marker={"color": colour(e, j), "size": 4, "opacity": 0.35}, customdata=np.arange(len(times)),
                hovertemplate=f"{e} raw: %{{y:.2f}} at %{{x:.1f}} s<extra></extra>",
            ))
    for e, moments in (peaks or {}).items():
        if e not in shown or not moments:
            continue
        fig.add_trace(go.Scatter(
            x=[t for t, _ in moments], y=[v for _, v in moments], mode="markers", name=f"{e} peaks",
            legendgroup=e, showlegend=False,
            marker={"symbol": "triangle-down", "size": 12, "color": colour(e, labels.index(e)),
                    "line": {"width": 1, "color": "white"}},
            hovertemplate=f"{e} peak %{{y:.2f}} at %{{x:.1f}} s<extra></extra>",
        ))
    for t in shots:
        fig.add_vline(x=t, line={"color": "#BBBBBB", "width": 1, "dash": "dot"})
    if explained:
        fig.add_trace(go.Scatter(
            x=list(explained), y=[1.04] * len(explained), mode="markers", name="explained",
            marker={"symbol": "diamond", "size": 9, "color": "#009E73"},
            hovertemplate="explained moment at %{x:.1f} s<extra></extra>",
        ))
    if selected_s is not None:
        fig.add_vline(x=selected_s, line={"color": "#222222", "width": 1.5})
    fig.update_yaxes(range=[0, 1.08])
    note = " (dotted: shot boundaries)" if len(shots) else ""
    return _layout(fig, title, "probability (smoothed)", "seconds" + note)


@dataclass(frozen=True)
class Series:
    """One ad's curve for an overlay chart."""

    name: str
    times: np.ndarray
    values: np.ndarray
    duration_s: float


def compare_figure(series: Sequence[Series], emotion: str, align: str = "seconds") -> go.Figure:
    """Several ads' curves for one emotion, aligned by seconds or by share of each ad's duration."""
    if align not in ("seconds", "share"):
        raise ValueError("align must be 'seconds' or 'share'")
    fig = go.Figure()
    for i, s in enumerate(series):
        x = s.times if align == "seconds" else s.times / max(s.duration_s, 1e-9) * 100.0
        fig.add_trace(go.Scatter(
            x=x, y=s.values, mode="lines+markers", name=s.name, line={"color": _FALLBACK[i % len(_FALLBACK)]},
            marker={"size": 6, "opacity": 0}, hovertemplate=f"{s.name}: %{{y:.2f}}<extra></extra>",
        ))
    fig.update_yaxes(range=[0, 1.05])
    x_title = "seconds" if align == "seconds" else "% of the ad's duration"
    return _layout(fig, f"{emotion} over time", f"{emotion} (smoothed)", x_title, legend="ad")


def profile_figure(profiles: Mapping[str, Mapping[str, float | None]], labels: Sequence[str],
                   title: str = "Emotion profile (mean over the frames the model scored)", *,
                   y_title: str = "mean probability", y_max: float = 1.0, value_format: str = ".2f") -> go.Figure:
    """Grouped bars: per emotion, each ad's value (its mean by default; e.g. percentiles with
    `y_title="percentile in the library", y_max=100, value_format=".0f"`)."""
    fig = go.Figure()
    for i, (name, means) in enumerate(profiles.items()):
        fig.add_trace(go.Bar(
            x=list(labels), y=[means.get(e) for e in labels], name=name,
            marker_color=_FALLBACK[i % len(_FALLBACK)],
            hovertemplate=f"{name}<br>%{{x}}: %{{y:{value_format}}}<extra></extra>",
        ))
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, y_max])
    return _layout(fig, title, y_title, "emotion", legend="ad")


#: the mix chart's bucket for ads whose evidence is too thin to name a dominant emotion
TOO_LITTLE_EVIDENCE = "too little evidence"
_TOO_LITTLE_COLOUR = "#D9D9D9"


def mix_figure(dominant_counts: Mapping[str, int],
               title: str = "Dominant emotion across the library (highest lift over the library's norm)", *,
               too_little_evidence: int = 0) -> go.Figure:
    """How many ads each emotion dominates, plus a grey "too little evidence" bar (when any) for the
    ads with too few face frames to name one: those are counted apart, never as an emotion."""
    names = list(dominant_counts)
    counts = [dominant_counts[n] for n in names]
    colours = [colour(n, i) for i, n in enumerate(names)]
    if too_little_evidence:
        names.append(TOO_LITTLE_EVIDENCE)
        counts.append(too_little_evidence)
        colours.append(_TOO_LITTLE_COLOUR)
    fig = go.Figure(go.Bar(
        x=names, y=counts, marker_color=colours,
        hovertemplate="%{x}: %{y} ads<extra></extra>",
    ))
    # whole ads: no 0.2-ads ticks on a small library
    fig.update_yaxes(tickformat=",d", rangemode="tozero", **({"dtick": 1} if max(counts, default=0) <= 10 else {}))
    return _layout(fig, title, "ads", "dominant emotion (highest lift over the norm)")
