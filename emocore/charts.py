"""Plotly figures for the dashboard and reports: pure functions of cache data, never shown here.

Every figure carries an explicit template (`plotly_white`; inside Streamlit the default template
would blacken exports) and a fixed colour per emotion, so the same emotion looks the same on every
chart. Timeline traces have invisible markers: Streamlit reports clicks on Plotly points only when
traces have markers, and each point carries its frame index in `customdata` (a soundtrack lane's
points carry their second).

An ad's timeline can show its soundtrack under the face emotions (`AudioPanel`): the lanes on a
second panel and the loudness on a third, all on the face panel's time axis, the shot boundaries
drawn across every panel. A soundtrack row t covers [t, t+1) s of the file, so lanes are drawn as
steps from t to t+1; a second without sound is a gap, never a zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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


#: Colours of the soundtrack lanes (distinct from the face emotions' where it matters).
AUDIO_COLOURS = {
    "laughter": "#E69F00",
    "applause": "#009E73",
    "music": "#56B4E9",
    "speech": "#555555",
    "funny": "#E69F00",
    "exciting": "#CC79A7",
    "loudness": "#444444",
}
#: The `meta` of every soundtrack trace starts with this, then the signal's name ("audio: laughter"):
#: it tells a click on a lane (whose points carry their second) from a click on an emotion.
AUDIO_PREFIX = "audio: "


@dataclass(frozen=True)
class AudioLane:
    """One soundtrack signal drawn on the timeline."""

    name: str
    """The signal's name in the cache (e.g. "laughter", "exciting")."""
    label: str
    """How the chart names it (e.g. "applause/cheering")."""
    values: np.ndarray
    """[T] per-second values in [0, 1]; NaN where there is no sound."""
    peaks: tuple[int, ...] = ()
    """Seconds to mark as this signal's peaks."""
    dashed: bool = False


@dataclass(frozen=True)
class AudioPanel:
    """An ad's soundtrack as the timeline shows it, or why there is none (`note`)."""

    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """[T] where each second starts (row t covers [t, t+1) s of the file)."""
    lanes: tuple[AudioLane, ...] = ()
    loudness_dbfs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """[T] RMS level per second, dBFS (not LUFS); NaN where there is no sound."""
    mood: tuple[str, ...] = ()
    """[T] per second, the music's dominant mood in words ("" where there is no music to speak of)."""
    note: str | None = None
    """Shown instead of the lanes: "no audio track", "audio failed: …", "audio not analysed …"."""

    @property
    def has_lanes(self) -> bool:
        return self.note is None and len(self.times) > 0


def _steps(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-second values as steps: x = each second's start plus the end of the last one."""
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    if times.size == 0:
        return times, values
    return np.append(times, times[-1] + 1.0), np.append(values, values[-1])


def _audio_traces(fig: go.Figure, audio: AudioPanel, row_lanes: int, row_loud: int) -> None:
    seconds = np.arange(len(audio.times))
    mood = list(audio.mood) + [""] * (len(audio.times) - len(audio.mood))
    for lane in audio.lanes:
        x, y = _steps(audio.times, lane.values)
        index = np.append(seconds, seconds[-1] if len(seconds) else 0)
        custom = np.column_stack([index, [*mood, mood[-1] if mood else ""]]) if lane.name == "music" else index
        hover = (f"{lane.label}: %{{y:.2f}} in second %{{customdata[0]}}<br>mood: %{{customdata[1]}}<extra></extra>"
                 if lane.name == "music" else f"{lane.label}: %{{y:.2f}} in second %{{customdata}}<extra></extra>")
        fig.add_trace(go.Scatter(
            x=x, y=y, name=lane.label, mode="lines+markers", legendgroup=f"audio-{lane.name}",
            meta=f"{AUDIO_PREFIX}{lane.name}", line={"color": AUDIO_COLOURS.get(lane.name, "#999999"), "width": 2,
                                                     "shape": "hv", "dash": "dash" if lane.dashed else "solid"},
            marker={"size": 8, "opacity": 0}, selected={"marker": {"opacity": 0}},
            unselected={"marker": {"opacity": 0}}, customdata=custom, hovertemplate=hover,
        ), row=row_lanes, col=1)
        if lane.peaks:
            peaks = [int(p) for p in lane.peaks if 0 <= int(p) < len(audio.times)]
            fig.add_trace(go.Scatter(
                x=[float(audio.times[p]) + 0.5 for p in peaks], y=[float(lane.values[p]) for p in peaks],
                mode="markers", name=f"{lane.label} peaks", legendgroup=f"audio-{lane.name}", showlegend=False,
                meta=f"{AUDIO_PREFIX}{lane.name}", customdata=peaks,
                marker={"symbol": "triangle-down", "size": 12, "color": AUDIO_COLOURS.get(lane.name, "#999999"),
                        "line": {"width": 1, "color": "white"}},
                hovertemplate=f"{lane.label} peak %{{y:.2f}} in second %{{customdata}}<extra>click to explain</extra>",
            ), row=row_lanes, col=1)
    x, y = _steps(audio.times, audio.loudness_dbfs)
    fig.add_trace(go.Scatter(
        x=x, y=y, name="loudness (dBFS)", mode="lines", meta=f"{AUDIO_PREFIX}loudness",
        line={"color": AUDIO_COLOURS["loudness"], "width": 1.5, "shape": "hv"},
        customdata=np.append(seconds, seconds[-1] if len(seconds) else 0),
        hovertemplate="loudness %{y:.1f} dBFS in second %{customdata}<extra>RMS level, 0 dBFS = full scale</extra>",
    ), row=row_loud, col=1)


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
    audio: AudioPanel | None = None,
) -> go.Figure:
    """Every emotion over time: smoothed lines (clickable points), optional raw dots, shot
    boundaries, each emotion's peaks, the explained moments, and the selected moment.

    With `audio`, the soundtrack goes under the faces on the same time axis: its lanes (0–1, with
    their peaks) on a second panel and the loudness (dBFS) on a third (on the second when no lane is
    chosen); an `AudioPanel` with a
    `note` (no audio track, failed, not analysed) shows the note where the lanes would be. Shot
    boundaries and the selected moment cross every panel."""
    with_audio = audio is not None
    lanes = with_audio and audio.has_lanes
    drawn = lanes and bool(audio.lanes)  # lanes chosen: their own panel above the loudness
    if with_audio:
        rows = 3 if drawn else 2
        faces = emotions is None or any(e in emotions for e in labels)  # no face emotion chosen: a thin panel
        heights = ([0.52, 0.3, 0.18] if faces else [0.16, 0.56, 0.28]) if drawn else [0.76, 0.24] if lanes \
            else [0.8, 0.2]
        fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.05, row_heights=heights)
    else:
        fig = go.Figure()
    at = {"row": 1, "col": 1} if with_audio else {}
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
        ), **at)
        if show_raw:
            fig.add_trace(go.Scatter(
                x=times, y=raw[:, j], name=f"{e} (raw)", mode="markers", legendgroup=e, showlegend=False,
                marker={"color": colour(e, j), "size": 4, "opacity": 0.35}, customdata=np.arange(len(times)),
                hovertemplate=f"{e} raw: %{{y:.2f}} at %{{x:.1f}} s<extra></extra>",
            ), **at)
    for e, moments in (peaks or {}).items():
        if e not in shown or not moments:
            continue
        fig.add_trace(go.Scatter(
            x=[t for t, _ in moments], y=[v for _, v in moments], mode="markers", name=f"{e} peaks",
            legendgroup=e, showlegend=False,
            marker={"symbol": "triangle-down", "size": 12, "color": colour(e, labels.index(e)),
                    "line": {"width": 1, "color": "white"}},
            hovertemplate=f"{e} peak %{{y:.2f}} at %{{x:.1f}} s<extra></extra>",
        ), **at)
    if explained:
        fig.add_trace(go.Scatter(
            x=list(explained), y=[1.04] * len(explained), mode="markers", name="explained",
            marker={"symbol": "diamond", "size": 9, "color": "#009E73"},
            hovertemplate="explained moment at %{x:.1f} s<extra></extra>",
        ), **at)
    if lanes:
        _audio_traces(fig, audio, 2, 3 if drawn else 2)
    if with_audio and not shown:
        fig.add_annotation(text="no face emotion chosen", x=0.5, y=0.5, xref="x domain", yref="y domain",
                           showarrow=False, font={"size": 14, "color": "#555555"}, row=1, col=1)
    # one line per boundary across every panel (the panels share the time axis)
    across = {"xref": "x", "yref": "paper", "y0": 0, "y1": 1}
    for t in shots:
        fig.add_shape(type="line", x0=t, x1=t, line={"color": "#BBBBBB", "width": 1, "dash": "dot"}, **across)
    if selected_s is not None:
        fig.add_shape(type="line", x0=selected_s, x1=selected_s, line={"color": "#222222", "width": 1.5}, **across)
    note = " (dotted: shot boundaries)" if len(shots) else ""
    fig = _layout(fig, title, "probability (smoothed)", "" if with_audio else "seconds" + note)
    if not with_audio:
        fig.update_yaxes(range=[0, 1.08])
    else:
        fig.update_yaxes(title_text="faces: probability", range=[0, 1.08], row=1, col=1)
        bottom = 3 if drawn else 2
        fig.update_xaxes(title_text="seconds" + note, row=bottom, col=1)
        if lanes:
            if drawn:
                fig.update_yaxes(title_text="sound: probability", range=[0, 1.08], row=2, col=1)
            fig.update_yaxes(title_text="dBFS", range=[-70, 0], row=bottom, col=1)
            # the face panel's x axis would otherwise end at the last sampled frame
            end = max(float(times[-1]) if len(times) else 0.0, float(audio.times[-1]) + 1.0 if len(audio.times) else 0.0)
            fig.update_xaxes(range=[0, end])
        else:
            fig.update_yaxes(visible=False, range=[0, 1], row=2, col=1)
            low, high = fig.layout.yaxis2.domain
            fig.add_annotation(text=f"soundtrack: {audio.note}", x=0.5, y=(low + high) / 2, xref="paper", yref="paper",
                               showarrow=False, font={"size": 14, "color": "#555555"})
        # the legend under the panels: the chart keeps its width for the time axis
        fig.update_layout(height=720 if drawn else 560 if lanes else 500,
                          legend={"orientation": "h", "yanchor": "top", "y": -0.1 if drawn else -0.16, "x": 0},
                          legend_title_text="", margin={"t": 60, "b": 40})
    return fig


@dataclass(frozen=True)
class Series:
    """One ad's curve for an overlay chart."""

    name: str
    times: np.ndarray
    values: np.ndarray
    duration_s: float


def compare_figure(series: Sequence[Series], emotion: str, align: str = "seconds", *,
                   per_second: bool = False) -> go.Figure:
    """Several ads' curves for one emotion, aligned by seconds or by share of each ad's duration.

    `per_second`: the curves are a soundtrack signal's per-second values (each holds for its second
    [t, t+1), drawn as steps; a gap is a second without sound) rather than smoothed face frames."""
    if align not in ("seconds", "share"):
        raise ValueError("align must be 'seconds' or 'share'")
    fig = go.Figure()
    for i, s in enumerate(series):
        times, values = _steps(s.times, s.values) if per_second else (s.times, s.values)
        x = times if align == "seconds" else times / max(s.duration_s, 1e-9) * 100.0
        fig.add_trace(go.Scatter(
            x=x, y=values, mode="lines+markers", name=s.name,
            line={"color": _FALLBACK[i % len(_FALLBACK)], **({"shape": "hv"} if per_second else {})},
            marker={"size": 6, "opacity": 0}, hovertemplate=f"{s.name}: %{{y:.2f}}<extra></extra>",
        ))
    fig.update_yaxes(range=[0, 1.05])
    x_title = "seconds" if align == "seconds" else "% of the ad's duration"
    y_title = f"{emotion} (probability per second of sound)" if per_second else f"{emotion} (smoothed)"
    return _layout(fig, f"{emotion} over time", y_title, x_title, legend="ad")


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
