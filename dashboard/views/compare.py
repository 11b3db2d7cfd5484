"""Compare: two to four ads side by side — curves overlaid, profiles, key frames, differences; on a face
emotion or a soundtrack signal (laughter, applause/cheering, music, the funny and exciting cues…)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from loaders import cache_root, cache_version, library_for, load_ads_by_key, load_bundle, load_explanation
from widgets import ad_search_ui, chart, explain_command, norms_ui, open_cache_or_explain, plain, report_ui, \
    warn_unknown_params

from emocore import charts, export, queries, usecases
from emocore import render as draw
from emocore.audio.lanes import LANE_LABELS
from emocore.export import ReportSection
from emocore.store import FrameExplanation

ALIGN = {"seconds": "seconds", "share of duration": "share"}
#: what the profile chart shows (label -> link value)
PROFILE = {"mean": "mean", "percentile in the library": "pct"}


def _pick_ads() -> None:
    """A change in the picker becomes the link (the link says which ads are compared)."""
    st.query_params["ads"] = ",".join(st.session_state["cmp-ads"])


def _most_faces(table: pd.DataFrame, count: int) -> list[str]:
    """The `count` analysed ads with the most face coverage (the newest of equals)."""
    ok = (table["status"] == "ok").to_numpy(dtype=bool)
    coverage = np.nan_to_num(table["face_coverage"].to_numpy(dtype=np.float64, na_value=np.nan), nan=-1.0)
    order = np.argsort(-np.where(ok, coverage, -2.0), kind="stable")[:count]
    return [str(k) for k, good in zip(table["key"].to_numpy()[order], ok[order]) if good]


def ads_ui(root: Path, table: pd.DataFrame) -> list[str]:
    """The ads compared: the link's (?ads=A,B), else the two with the most face coverage; a search box
    finds others on the server (`widgets.ad_search_ui`, at most `queries.SEARCH_LIMIT` offered)."""
    linked = list(dict.fromkeys(k for k in st.query_params.get("ads", "").split(",") if k))
    named = {m.key for m in load_ads_by_key(str(root), cache_version(root), tuple(linked)) if m.status == "ok"}
    wanted = [k for k in linked if k in named]
    missing = [k for k in linked if k not in named]
    if missing:
        st.warning("Not in this cache (or failed): " + ", ".join(plain(k) for k in missing))
    if len(wanted) > 4:
        st.warning(f"The link names {len(wanted)} ads; comparing the first 4.")
        wanted = wanted[:4]
    wanted = wanted or _most_faces(table, 2)
    options = ad_search_ui(root, "cmp", wanted, status="ok")
    st.session_state["cmp-ads"] = wanted  # the link decides (a change rewrites the link first: _pick_ads)
    chosen = st.multiselect("Ads to compare (2 to 4)", options.keys, max_selections=4, format_func=options.label,
                            key="cmp-ads", on_change=_pick_ads)
    st.query_params["ads"] = ",".join(chosen)
    return chosen


def key_frames_ui(root: Path, version: int, bundles: list[queries.AdBundle], emotion: str) -> list[tuple[str, np.ndarray]]:
    """Each ad's best explained moment for the emotion, with its LIME overlay; returns them for the report."""
    shown = []
    for column, b in zip(st.columns(len(bundles)), bundles):
        with column:
            st.markdown(f"**{plain(b.ad.name)}**")
            loaded = (load_explanation(str(root), version, b.ad.key, index) for index, _ in b.explained)
            best = usecases.best_moment((f for f in loaded if isinstance(f, FrameExplanation)), emotion)
            if best is None:
                st.caption(f"No explained moment for {emotion}. Explain its peak with:")
                t = next((t for t, _ in sorted(queries.peaks(b).get(emotion, []), key=lambda x: -x[1])), None)
                if t is not None:
                    st.code(explain_command(b.ad.path, t, emotion, root), language="bash")
                continue
            found, attribution = best.frame, best.attribution
            patch = draw.overlay(found.image, found.segments, attribution.weights, opacity=0.55)
            st.image(patch, width=320,
                     caption=f"{found.time_s:.1f} s · {emotion} {attribution.trust.score:.2f} · {attribution.method.upper()}")
            st.page_link("views/ad.py", label="open this moment", query_params={"ad": b.ad.key, "t": f"{found.time_s:.3f}",
                                                                               "emotion": emotion})
            shown.append((f"{b.ad.name} — {found.time_s:.1f} s", patch))
    return shown


def signal_label(ref: str) -> str:
    """How the picker names a choice: a face emotion as is, a soundtrack signal with its lane's words."""
    return f"soundtrack: {LANE_LABELS.get(ref[len('audio:'):], ref)}" if ref.startswith("audio:") else ref


def audio_peaks_ui(bundles: list[queries.AdBundle], signal: str) -> None:
    """Each ad's highest seconds of the soundtrack signal, each a link to that moment on the Ad page."""
    for column, b in zip(st.columns(len(bundles)), bundles):
        with column:
            st.markdown(f"**{plain(b.ad.name)}**")
            lanes = b.lanes
            if lanes is None:
                st.caption(plain(b.audio_note))
                continue
            seconds = lanes.peaks(signal, k=3, min_value=queries.AUDIO_MOMENT_FLOOR)
            if not seconds:
                column = lanes.column(signal)
                best = "" if np.isnan(column).all() else f"; its highest: {float(np.nanmax(column)):.2f}"
                st.caption(f"No second reaches {queries.AUDIO_MOMENT_FLOOR:g}{best}.")
            for second in seconds:
                value = float(lanes.column(signal)[second])
                st.page_link("views/ad.py", label=f"{second}–{second + 1} s: {value:.2f}",
                             query_params={"ad": b.ad.key, "t": f"{second + 0.5:.3f}", "audio": signal})


def render() -> None:
    """The Compare page: two to four ads on one emotion, their profiles, key frames and differences."""
    st.title("Compare")
    root = cache_root()
    warn_unknown_params("compare")
    if not open_cache_or_explain(root):
        return
    version = cache_version(root)
    norms_choice = norms_ui(root, "cmp")
    table = library_for(root, norms_choice)
    if (table["status"] == "ok").sum() < 2:
        st.info("Comparing needs at least two indexed ads in the cache.")
        return
    chosen = ads_ui(root, table)
    if len(chosen) < 2:
        st.info("Pick at least two ads.")
        return
    bundles = [load_bundle(str(root), version, k) for k in chosen]
    labels = usecases.shared_emotions(bundles)
    if not labels:
        st.info("These ads were scored by models with no emotion in common: nothing to compare.")
        return
    c1, c2 = st.columns(2)
    choices = [*labels, *(f"audio:{s}" for s in queries.AUDIO_RANKABLE)]
    wanted = st.query_params.get("emotion", "happy")
    if wanted not in choices and f"audio:{wanted}" in choices:
        wanted = f"audio:{wanted}"
    picked = c1.selectbox("Emotion or soundtrack signal", choices,
                          index=choices.index(wanted) if wanted in choices else 0, format_func=signal_label,
                          key="cmp-emotion")
    align_label = c2.radio("Align by", list(ALIGN), horizontal=True, key="cmp-align",
                           index=1 if st.query_params.get("align") == "share" else 0)
    st.query_params.update({"emotion": picked, "align": ALIGN[align_label]})
    comparison = usecases.compare(bundles, table, picked)
    emotion = comparison.emotion
    shown_as = LANE_LABELS.get(emotion, emotion) if comparison.audio else emotion

    series = [charts.Series(c.name, c.times, c.values, c.duration_s) for c in comparison.curves]
    overlay_fig = charts.compare_figure(series, shown_as, ALIGN[align_label], per_second=comparison.audio)
    chart(overlay_fig, comparison.curves_table(), f"compare_{emotion}", "cmp-overlay")
    if comparison.audio:
        silent = [f"{b.ad.name} ({b.audio_note})" for b in bundles if b.lanes is None]
        st.caption("Per second of the file (a gap: no sound there)."
                   + (f" No curve for {plain(', '.join(silent))}." if silent else ""))

    wanted_profile = st.query_params.get("profile", "mean")
    profile_label = st.radio("Profiles show", list(PROFILE), horizontal=True, key="cmp-profile-shows",
                             index=list(PROFILE.values()).index(wanted_profile) if wanted_profile in PROFILE.values()
                             else 0)
    st.query_params["profile"] = PROFILE[profile_label]
    profiles = usecases.profiles(bundles, table, labels, by=PROFILE[profile_label])
    if PROFILE[profile_label] == "pct":
        source = "this cache" if norms_choice.root is None else norms_choice.label
        profile_fig = charts.profile_figure(profiles, labels, f"Emotion profile (percentile among the ads of {source})",
                                            y_title="percentile in the library", y_max=100.0, value_format=".0f")
    else:
        profile_fig = charts.profile_figure(profiles, labels)
    chart(profile_fig, pd.DataFrame(profiles).rename_axis("emotion").reset_index(), "compare_profiles", "cmp-profile")

    st.subheader("Differences", anchor=False)
    diff = comparison.differences
    st.dataframe(diff, hide_index=True, width="stretch", placeholder="—", column_config={
        c: st.column_config.NumberColumn(format="%.2f") for c in diff.columns if diff[c].dtype.kind == "f"} | {
        f"{emotion} percentile": st.column_config.NumberColumn(format="p%.0f", help="In the norm library: p92 = "
                                                               "higher than 92% of its ranked ads")})
    st.download_button("Differences (CSV)", export.table_csv(diff), "compare_differences.csv", "text/csv",
                       key="cmp-diff-csv", on_click="ignore")

    if comparison.audio:
        st.subheader(f"Soundtrack peaks: {shown_as}", anchor=False)
        audio_peaks_ui(bundles, emotion)
        frames: list[tuple[str, np.ndarray]] = []
    else:
        st.subheader(f"Key frames: {emotion}", anchor=False)
        frames = key_frames_ui(root, version, bundles, emotion)

    with st.expander("Report of this comparison", icon=":material/summarize:"):
        names = " vs ".join(b.ad.name for b in bundles)
        report_ui(f"Comparison: {names}", lambda: [
            ReportSection(f"{shown_as} over time", f"Aligned by {align_label}."
                          + (" Per second of sound." if comparison.audio else ""), (overlay_fig,), (), None),
            ReportSection("Emotion profiles", "", (profile_fig,), (), diff),
            *([] if comparison.audio else [ReportSection(
                f"Key frames: {emotion}", "LIME overlays of each ad's strongest explained moment.", (), tuple(frames),
                None)]),
        ], f"{queries.params_summary(bundles[0].ad)} · cache {root.resolve()}", "cmp-report",
            f"{','.join(chosen)}:{emotion}:{align_label}:{profile_label}:{norms_choice.label}:{version}")


if __name__ == "__main__":  # run as a page by dashboard/main.py's st.navigation
    render()
