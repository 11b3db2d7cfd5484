"""Library: every ad in the cache, ranked by an emotion's or a soundtrack signal's evidence-aware
score; filter, open one.

The default order is `queries.rank`'s, the same as `python cli.py ls --rank EMOTION`: the ads with
enough evidence (face frames; for a soundtrack signal such as laughter, seconds of sound) ranked by
their score, then the ads with too little evidence (then, for a soundtrack signal, those with no
audio, a failed soundtrack, none analysed), then the failed ones. Percentiles, lifts and the
dominant emotion are read against the chosen norms; the emotion mix stays the faces'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import streamlit as st
from loaders import NormsChoice, cache_root, cover_for, library_for
from widgets import chart, empty_cache_note, norms_ui, open_cache_or_explain, plain, warn_unknown_params

from emocore import charts, norms, queries
from emocore.audio.lanes import LANE_LABELS
from emocore.usecases import LibraryFilters, RankedLibrary, evidence_rate, face_frames_for, filter_library, \
    library_details

PAGE_SIZE = 50
#: the rows a page can hold (the link's ?size=)
PAGE_SIZES = (50, 100)
#: the units the minimum evidence can be set in (link value -> label)
EVIDENCE_UNITS = {"frames": "face frames", "seconds": "seconds with a face"}
#: what "Funniest first" ranks by: the soundtrack's laughter lane
FUNNIEST = "audio:laughter"


@dataclass(frozen=True)
class Chosen:
    """What the sidebar set: the filters, and the minimum evidence as the user typed it."""

    filters: LibraryFilters
    min_evidence: float
    """The least evidence an ad needs to be ranked, as set, in `evidence_unit`."""
    evidence_unit: str
    """"frames" (face frames), "seconds" (seconds with a face) or "sound" (seconds of sound: a soundtrack signal)."""

    @property
    def signal(self) -> queries.Signal:
        return queries.Signal(self.filters.emotion[len("audio:"):], audio=True) if self.filters.emotion.startswith(
            "audio:") else queries.Signal(self.filters.emotion)


def _float(name: str, default: float) -> float:
    try:
        return float(st.query_params.get(name, default))
    except ValueError:
        return default


def signal_label(ref: str) -> str:
    """How the rank picker names a choice: a face emotion as is, a soundtrack signal with its lane's words."""
    return f"soundtrack: {LANE_LABELS.get(ref[len('audio:'):], ref)}" if ref.startswith("audio:") else ref


def _funniest_first() -> None:
    st.session_state["lib-emotion"] = FUNNIEST
    st.session_state["lib-order"] = "highest first"


def filters_ui(table: pd.DataFrame, emotions: list[str]) -> Chosen:
    """The sidebar's filters, initialised from the link's query parameters and written back to it."""
    params = st.query_params
    choices = [*emotions, *(f"audio:{s}" for s in queries.AUDIO_RANKABLE)]
    with st.sidebar:
        st.header("Rank and filter")
        wanted = params.get("emotion", "happy" if "happy" in emotions else (emotions[0] if emotions else ""))
        if wanted not in choices and f"audio:{wanted}" in choices:  # ?emotion=laughter: the soundtrack's
            wanted = f"audio:{wanted}"
        st.button("Funniest first (laughter)", key="lib-funniest", on_click=_funniest_first,
                  icon=":material/sentiment_very_satisfied:",
                  help="Ranks by the soundtrack's laughter lane, highest first, over the ads with enough sound")
        ranked_by = st.selectbox("Rank by", choices, index=choices.index(wanted) if wanted in choices else 0,
                                 format_func=signal_label, key="lib-emotion",
                                 help="A face emotion ranks by its rank score: the ad's mean over its face frames, "
                                      "shrunk towards the library's mean the fewer face frames it has (see the "
                                      "README), so two happy frames cannot outrank an ad smiling all along. A "
                                      "soundtrack signal (laughter, applause/cheering, music, the funny and exciting "
                                      "cues…) does the same over the seconds of sound.")
        audio = ranked_by.startswith("audio:")
        descending = st.radio("Order", ["highest first", "lowest first"], horizontal=True, key="lib-order",
                              index=1 if params.get("order") == "asc" else 0) == "highest first"
        linked_unit = params.get("per", "frames")
        if audio:
            unit = "sound"
            default = float(norms.DEFAULT_MIN_AUDIO_SECONDS)
            initial = _float("evidence", default) if linked_unit == "sound" else default
            minimum = st.number_input("Minimum evidence to rank (seconds of sound)", 1.0, 100_000.0,
                                      max(1.0, initial), 1.0, key="lib-evidence-sound", format="%g",
                                      help="Ads with less sound are listed after the ranked ones, then those with "
                                           "no audio, a failed soundtrack, or none analysed")
            frames = norms.DEFAULT_MIN_FACE_FRAMES
        else:
            units = list(EVIDENCE_UNITS)
            unit = st.radio("Minimum evidence to rank", units,
                            index=units.index(linked_unit) if linked_unit in units else 0,
                            format_func=EVIDENCE_UNITS.get, horizontal=True, key="lib-evidence-unit",
                            help="Ads with less are listed after the ranked ones, unranked")
            rate = evidence_rate(table)
            default = float(norms.DEFAULT_MIN_FACE_FRAMES) / (1.0 if unit == "frames" else rate)
            least = 1.0 if unit == "frames" else 1.0 / rate
            # a number in the link is in the link's unit: after switching units, start from the default
            initial = _float("evidence", default) if unit == linked_unit else default
            minimum = st.number_input(f"at least ({EVIDENCE_UNITS[unit]})", least, 100_000.0, max(least, initial),
                                      1.0 if unit == "frames" else 0.5, key=f"lib-evidence-{unit}", format="%g")
            frames = int(round(minimum)) if unit == "frames" else face_frames_for(minimum, rate)
        score = st.slider(f"Rank score, {signal_label(ranked_by)}", 0.0, 1.0, (_float("min", 0.0), _float("max", 1.0)),
                          0.01, key="lib-score", help="Keeps the ranked ads whose rank score (the figure the ranking "
                                                      "sorts by) is in this range; unranked ads are listed after them")
        longest = float(max(1.0, table["duration_s"].max(skipna=True) if table["duration_s"].notna().any() else 1.0))
        top = float(int(longest) + 1)
        duration = st.slider("Duration (s)", 0.0, top, (min(_float("dmin", 0.0), top), min(_float("dmax", top), top)),
                             0.5, key="lib-duration")
        name = st.text_input("Find (name, path or key prefix)", params.get("q", ""), key="lib-name",
                             help="Keeps the ads whose name or path contains this (any case), or whose key starts "
                                  "with it")
        statuses = tuple(st.multiselect("Status", ["ok", "failed"],
                                        [s for s in params.get("status", "ok,failed").split(",") if s in ("ok", "failed")],
                                        key="lib-status"))
    filters = LibraryFilters(ranked_by or "", frames, descending=descending, score=score, duration=duration,
                             name=name, statuses=statuses,
                             **({"min_audio_seconds": float(minimum)} if audio else {}))
    chosen = Chosen(filters, float(minimum), unit)
    st.query_params.update({
        "emotion": chosen.filters.emotion, "min": f"{score[0]:g}", "max": f"{score[1]:g}", "q": name,
        "status": ",".join(statuses), "dmin": f"{duration[0]:g}", "dmax": f"{duration[1]:g}",
        "order": "desc" if descending else "asc", "evidence": f"{minimum:g}", "per": unit,
    })
    return chosen


def _ads(count: int) -> str:
    return f"{count:,} ad" + ("" if count == 1 else "s")


def _percentile_note(choice: NormsChoice) -> str:
    return "this cache's ads" if choice.root is None else f"the ads of {choice.label}"


def table_view(root: Path, view: pd.DataFrame, signal: queries.Signal, norms_link: str) -> pd.DataFrame:
    """The shown columns: rank, identity, the ranked figures with their evidence (face frames, or seconds
    of sound for a soundtrack signal), then the rest."""
    def column(prefix: str) -> pd.Series | None:
        return view.get(signal.column(prefix))

    ok = view["status"] == "ok"
    heard = ok & (view["audio_status"] == "ok")
    faced = ok & (view["face_frames"].fillna(0) > 0)
    faces = {"face frames": view["face_frames"].where(ok), "face seconds": view["face_seconds"].where(ok)}
    sound = {"sound (s)": view["audio_seconds"].where(heard), "audio": view["audio_note"].where(ok, "failed")}
    # a missing value in words (the columns' help says what each means), never "None"
    lifted = {"dominant": view["dominant"].astype(object).where(view["dominant"].notna(), [
                  "too little evidence" if f else "no face" if o else "failed" for o, f in zip(ok, faced)]),
              "raw top emotion": view["dominant_raw"].astype(object).where(
                  view["dominant_raw"].notna(), ["no face" if o else "failed" for o in ok])}
    # the ranked signal's evidence right after its figures
    evidence = {**sound, **faces, **lifted} if signal.audio else {**faces, **lifted, **sound}
    return pd.DataFrame({
        "rank": view["rank"],
        "thumbnail": [cover_for(root, k) for k in view["key"]],
        "name": view["name"],
        "rank score": column("score"),
        "mean (raw)": column("mean"),
        "percentile": column("pct"),
        "lift": column("lift"),
        **evidence,
        "open": [f"ad?ad={k}{norms_link}" for k in view["key"]],
        "status": view["status"],
        "duration (s)": view["duration_s"].round(1),
        "peak": column("peak"),
        "share ≥ threshold": column("share"),
        "face coverage": view["face_coverage"],
        "failure": view["error"].astype(object).where(~ok & view["error"].notna(), ["" if o else "failed: reason not "
                                                                                   "recorded" for o in ok]),
    })


COLUMNS = {
    "rank": st.column_config.NumberColumn("rank", format="%d", width=44,
                                          help="Place in the ranking; —: too little evidence to rank (see the "
                                               "evidence columns), no face, or failed (see the failure column)"),
    "thumbnail": st.column_config.ImageColumn("", width=56),
    "name": st.column_config.TextColumn(width=130),
    "rank score": st.column_config.NumberColumn(
        format="%.2f", width=76,
        help="What the ranking sorts by: the mean over the face frames, shrunk towards the library's mean the "
             "fewer face frames the ad has; —: no face (or no sound, for a soundtrack signal) or failed"),
    "mean (raw)": st.column_config.NumberColumn(format="%.2f", width=80, help="The mean over the face frames, as "
                                                "the model gives it (no evidence weighting); —: no face, or failed"),
    "percentile": st.column_config.NumberColumn(format="p%.0f", width=72, help="Where the rank score falls among "
                                                "the norm library's ranked ads: p92 = higher than 92% of them, the "
                                                "top 8%; —: too little evidence to place it, no face, or failed"),
    "lift": st.column_config.NumberColumn(format="%.1f× library", width=86, help="The rank score over the norm "
                                          "library's mean for this emotion: 1.8× = 80% above the library; "
                                          "—: no face, or failed"),
    "face frames": st.column_config.NumberColumn(format="%d", width=80, help="Evidence: sampled frames with a "
                                                 "face scored; —: failed"),
    "face seconds": st.column_config.NumberColumn(format="%.1f s", width=86, help="Evidence: seconds with a face; "
                                                 "—: failed"),
    "sound (s)": st.column_config.NumberColumn(format="%.0f s", width=72, help="Evidence of the soundtrack "
                                               "signals: seconds with sound; —: no audio, not analysed or failed "
                                               "(the audio column says which)"),
    "audio": st.column_config.TextColumn(width=110, help="The soundtrack: seconds of sound, no audio (the file "
                                         "has no audio track), audio failed (why), not analysed (indexed with "
                                         "--no-audio), or failed (the ad failed indexing)"),
    "dominant": st.column_config.TextColumn(width=110, help="The emotion with the highest lift over the norm, "
                                                            "among those with enough evidence. too little evidence: "
                                                            "too few face frames to name one; no face: the face "
                                                            "model found no face; failed: indexing failed"),
    "raw top emotion": st.column_config.TextColumn(width=108, help="The highest raw mean (argmax), the model's bias "
                                                                   "included (it leans to sad and fear); no face: "
                                                                   "no face found; failed: indexing failed"),
    "open": st.column_config.LinkColumn("open", display_text="open ›", width=56),
    "peak": st.column_config.NumberColumn(format="%.2f", help="The highest smoothed value; —: no face, or failed"),
    "share ≥ threshold": st.column_config.NumberColumn(format="percent", help="Share of the face frames at or "
                                                       "above the threshold; —: no face, or failed"),
    "face coverage": st.column_config.NumberColumn(format="percent", help="Share of the sampled frames with a "
                                                   "face; —: failed, or the model scores whole frames"),
    "failure": st.column_config.TextColumn(width=200, help="Why indexing failed (empty for the ads indexed)"),
    "status": st.column_config.TextColumn(width=60, help="ok: indexed; failed: see the failure column"),
}


def failures_note(shown: pd.DataFrame) -> str | None:
    """The failed ads of the page with their reasons, in words under the table (the failure column is far
    to the right); None when the page holds none."""
    failed = shown[shown["status"] == "failed"]
    if failed.empty:
        return None
    listed = "; ".join(f"{plain(n)}: {plain(r)}" for n, r in zip(failed["name"][:5], failed["failure"][:5]))
    more = f" (and {len(failed) - 5} more in the failure column)" if len(failed) > 5 else ""
    return f"Failed on this page: {listed}{more}."


def mix_chart(ok: pd.DataFrame, emotions: list[str], choice: NormsChoice) -> None:
    """The library's emotion mix by the lifted dominant; ads without one count as too little evidence."""
    counts = ok["dominant"].value_counts()
    mix = {e: int(counts.get(e, 0)) for e in emotions}
    thin = int(ok["dominant"].isna().sum())
    norm = "the library's norm" if choice.root is None else "the norm of another cache"
    fig = charts.mix_figure(mix, f"Dominant emotion across the library (highest lift over {norm})",
                            too_little_evidence=thin)
    data = pd.DataFrame({"dominant": [*mix, charts.TOO_LITTLE_EVIDENCE], "ads": [*mix.values(), thin]})
    with st.expander("The library's emotion mix", expanded=True):
        chart(fig, data, "emotion_mix", "lib-mix")
        st.caption("Each indexed ad counts once, for its dominant emotion: the one with the highest lift over the "
                   f"norm (not the highest raw mean). Too little evidence to name one: {_ads(thin)}.")


def render() -> None:
    """The Library page: every ad ranked by one emotion, filtered from the sidebar; a click opens one."""
    st.title("Library")
    root = cache_root()
    warn_unknown_params("library")
    if not open_cache_or_explain(root):
        return
    norms_choice = norms_ui(root, "lib")
    table = library_for(root, norms_choice)
    emotions = queries.emotions_in(table)
    if table.empty:
        empty_cache_note(root)
        return
    chosen = filters_ui(table, emotions)
    found = filter_library(table, chosen.filters)
    ok = table.loc[(table["status"] == "ok").to_numpy(dtype=bool), ["dominant", "duration_s"]]
    a, b, c, d = st.columns(4)
    a.metric("Ads", f"{len(table):,}")
    b.metric("Shown", f"{len(found):,}")
    c.metric("Failed", f"{int((table['status'] == 'failed').sum()):,}")
    d.metric("Total duration", f"{ok['duration_s'].sum() / 60:.1f} min")
    view = library_details(root, page_ui(found))  # the page's rows get the rest of their columns
    norms_param = st.query_params.get("norms")
    norms_link = "" if norms_param is None else f"&norms={quote(norms_param, safe='')}"
    shown = table_view(root, view, chosen.signal, norms_link)
    st.caption(ranking_note(table, chosen, found, norms_choice))
    picked = st.dataframe(
        shown, hide_index=True, key="lib-table", on_select="rerun", selection_mode="single-row",
        row_height=60, column_config=COLUMNS, placeholder="—",
    )
    failures = failures_note(shown)
    if failures:
        st.caption(failures)
    selected = picked.selection.rows if picked else []
    if selected:
        target = {"ad": view["key"].iloc[selected[0]]}
        if norms_param is not None:
            target["norms"] = norms_param
        st.switch_page("views/ad.py", query_params=target)
    mix_chart(ok, emotions, norms_choice)


def page_ui(found: RankedLibrary) -> pd.DataFrame:
    """The page of rows to show: only its rows are built (`RankedLibrary.page`); the page number and the
    rows per page (`PAGE_SIZES`) are in the link (?page=2&size=100)."""
    try:
        linked_size = int(st.query_params.get("size", PAGE_SIZE))
    except ValueError:
        linked_size = PAGE_SIZE
    left, right = st.columns([1, 4])
    size = left.selectbox("Rows per page", PAGE_SIZES, index=PAGE_SIZES.index(linked_size)
                          if linked_size in PAGE_SIZES else 0, key="lib-page-size")
    pages = max(1, -(-len(found) // size))
    try:
        start_page = min(max(1, int(st.query_params.get("page", 1))), pages)
    except ValueError:
        start_page = 1
    page = int(right.number_input(f"Page (of {pages:,})", 1, pages, start_page, key="lib-page")) if pages > 1 else 1
    page = min(page, pages)
    st.query_params.update({"page": str(page), "size": str(size)})
    return found.page((page - 1) * size, page * size)


def ranking_note(table: pd.DataFrame, chosen: Chosen, found: RankedLibrary, choice: NormsChoice) -> str:
    """The caption above the table: what is ranked, how many have too little evidence, the norms."""
    if chosen.signal.audio:
        evidence = f"{chosen.min_evidence:g} s of sound"
        unheard = (f"; no soundtrack to rank (no audio, audio failed, not analysed): {_ads(found.unheard)}, listed "
                   "after them" if found.unheard else "")
    else:
        evidence = f"{chosen.filters.min_face_frames} face frames"
        if chosen.evidence_unit == "seconds":
            evidence = f"{chosen.min_evidence:g} s with a face = {evidence} at {evidence_rate(table):g} frames/s"
        unheard = ""
    return (
        f"Ranked by the {plain(signal_label(chosen.filters.emotion))} rank score ({_ads(found.ranked)} with at "
        f"least {evidence}); **too little evidence to rank: {_ads(found.thin)}** (listed after the ranked ones)"
        + unheard + (f"; {found.failed:,} failed, listed last" if found.failed else "")
        + f". Percentiles and lifts are against {plain(_percentile_note(choice))}. Click a row to open the ad.")


if __name__ == "__main__":  # run as a page by dashboard/main.py's st.navigation
    render()
