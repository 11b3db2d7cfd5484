"""Library: every ad in the cache; filter, rank by an emotion, open one."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st
from loaders import cache_root, cache_version, load_library, open_cache_or_explain, thumbnail_for, warn_unknown_params
from widgets import chart

from emocore import charts, queries

PAGE_SIZE = 50


@dataclass(frozen=True)
class Filters:
    emotion: str
    score: tuple[float, float]
    duration: tuple[float, float]
    name: str
    statuses: tuple[str, ...]
    descending: bool


def _float(name: str, default: float) -> float:
    try:
        return float(st.query_params.get(name, default))
    except ValueError:
        return default


def filters_ui(table: pd.DataFrame, emotions: list[str]) -> Filters:
    """The sidebar's filters, initialised from the link's query parameters and written back to it."""
    params = st.query_params
    with st.sidebar:
        st.header("Filter and rank")
        wanted = params.get("emotion", "happy" if "happy" in emotions else (emotions[0] if emotions else ""))
        emotion = st.selectbox("Rank by emotion", emotions, index=emotions.index(wanted) if wanted in emotions else 0,
                               key="lib-emotion", help="Sorts by the emotion's mean over the frames the model scored (for the face "
                               "model: the frames with a face)")
        descending = st.radio("Order", ["highest first", "lowest first"], horizontal=True, key="lib-order",
                              index=1 if params.get("order") == "asc" else 0) == "highest first"
        score = st.slider(f"Mean {emotion}", 0.0, 1.0, (_float("min", 0.0), _float("max", 1.0)), 0.01,
                          key="lib-score")
        longest = float(max(1.0, table["duration_s"].max(skipna=True) if table["duration_s"].notna().any() else 1.0))
        top = float(int(longest) + 1)
        duration = st.slider("Duration (s)", 0.0, top, (min(_float("dmin", 0.0), top), min(_float("dmax", top), top)),
                             0.5, key="lib-duration")
        name = st.text_input("Name contains", params.get("q", ""), key="lib-name")
        statuses = tuple(st.multiselect("Status", ["ok", "failed"],
                                        [s for s in params.get("status", "ok,failed").split(",") if s in ("ok", "failed")],
                                        key="lib-status"))
    chosen = Filters(emotion or "", score, duration, name, statuses, descending)
    st.query_params.update({
        "emotion": chosen.emotion, "min": f"{score[0]:g}", "max": f"{score[1]:g}", "q": name,
        "status": ",".join(statuses), "dmin": f"{duration[0]:g}", "dmax": f"{duration[1]:g}",
        "order": "desc" if descending else "asc",
    })
    return chosen


def apply(table: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Filtered and ranked rows. Failed ads have no scores: they pass the score filter, listed last."""
    column = f"mean_{f.emotion}"
    rows = table[table["status"].isin(f.statuses)]
    if f.name:
        rows = rows[rows["name"].str.contains(f.name, case=False, regex=False, na=False)]
    failed = rows["status"] == "failed"
    duration = rows["duration_s"].fillna(0.0)
    keep = failed | ((duration >= f.duration[0]) & (duration <= f.duration[1]))
    if column in rows:
        score = rows[column]
        keep &= failed | (score.notna() & (score >= f.score[0]) & (score <= f.score[1])) | (
            score.isna() & (f.score[0] <= 0.0))
        rows = rows[keep].sort_values(column, ascending=not f.descending, na_position="last", kind="stable")
    else:
        rows = rows[keep]
    return rows


st.title("Library")
root = cache_root()
warn_unknown_params("library")
if open_cache_or_explain(root):
    table = load_library(str(root), cache_version(root))
    emotions = queries.emotions_in(table)
    if table.empty:
        st.info(f"The cache at `{root}` holds no ads yet: `python cli.py index FOLDER --cache {root}`")
        st.stop()
    chosen = filters_ui(table, emotions)
    rows = apply(table, chosen)
    ok = table[table["status"] == "ok"]
    a, b, c, d = st.columns(4)
    a.metric("Ads", f"{len(table):,}")
    b.metric("Shown", f"{len(rows):,}")
    c.metric("Failed", f"{int((table['status'] == 'failed').sum()):,}")
    d.metric("Total duration", f"{ok['duration_s'].sum() / 60:.1f} min")

    pages = max(1, -(-len(rows) // PAGE_SIZE))
    try:
        start_page = min(max(1, int(st.query_params.get("page", 1))), pages)
    except ValueError:
        start_page = 1
    page = int(st.number_input(f"Page (of {pages})", 1, pages, start_page, key="lib-page")) if pages > 1 else 1
    st.query_params["page"] = str(page)
    view = rows.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    column = f"mean_{chosen.emotion}"
    shown = pd.DataFrame({
        "thumbnail": [thumbnail_for(root, k, 0) for k in view["key"]],
        "name": view["name"],
        "open": [f"ad?ad={k}" for k in view["key"]],
        "status": view["status"],
        "duration (s)": view["duration_s"].round(1),
        "dominant": view["dominant"],
        f"mean {chosen.emotion}": view.get(column),
        f"peak {chosen.emotion}": view.get(f"peak_{chosen.emotion}"),
        "peak at (s)": view.get(f"peak_time_{chosen.emotion}"),
        "share ≥ threshold": view.get(f"share_{chosen.emotion}"),
        "face coverage": view["face_coverage"],
        "failure": view["error"],
    })
    st.caption("Click a row to open the ad. Scores are the model's probabilities, smoothed over time; read them "
               "comparatively (see the README).")
    picked = st.dataframe(
        shown, hide_index=True, key="lib-table", on_select="rerun", selection_mode="single-row",
        row_height=60,
        column_config={
            "thumbnail": st.column_config.ImageColumn("", width="small"),
            "open": st.column_config.LinkColumn("open", display_text="open ›", width="small"),
            f"mean {chosen.emotion}": st.column_config.ProgressColumn(format="%.2f", min_value=0.0, max_value=1.0),
            "face coverage": st.column_config.NumberColumn(format="percent"),
            "share ≥ threshold": st.column_config.NumberColumn(format="percent"),
            f"peak {chosen.emotion}": st.column_config.NumberColumn(format="%.2f"),
            "peak at (s)": st.column_config.NumberColumn(format="%.1f"),
        },
    )
    selected = picked.selection.rows if picked else []
    if selected:
        st.switch_page("views/ad.py", query_params={"ad": view["key"].iloc[selected[0]]})

    counts = ok["dominant"].value_counts()
    mix = {e: int(counts.get(e, 0)) for e in emotions}
    with st.expander("The library's emotion mix", expanded=True):
        chart(charts.mix_figure(mix), pd.DataFrame({"emotion": list(mix), "ads": list(mix.values())}),
              "emotion_mix", "lib-mix")
