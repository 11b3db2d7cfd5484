"""Versions: cuts of one ad matched shot by shot against a reference — kept, moved, cut, added shots,
the timelines aligned by matched shots, and per matched shot the change of each emotion and audio signal."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from loaders import cache_root, cache_version, library_for
from widgets import chart, norms_ui, open_cache_or_explain, plain, warn_unknown_params

from emocore import export, usecases
from emocore.errors import EmocoreError
from emocore.versions import STATUSES, VersionMatch, alignment_figure

#: ads offered in the pickers besides the chosen ones (the search box narrows them on the server)
SHOWN = 50
MAX_CUTS = 4


@st.cache_data(show_spinner=False, max_entries=32)
def load_versions(root: str, version: int, refs: tuple[str, ...]) -> tuple[VersionMatch, ...] | str:
    """`usecases.versions` of the ads `refs` (the first is the reference), or why they cannot be matched."""
    try:
        return usecases.versions(root, refs)
    except EmocoreError as exc:
        return str(exc)


def _default_pair(ok: pd.DataFrame) -> list[str]:
    """A reference and a cut to start from: two ads whose names share a stem (a cut is usually named
    after its master; of several, the shortest cut), else the two newest."""
    names = dict(zip(ok["key"], ok["name"]))
    duration = dict(zip(ok["key"], ok["duration_s"].fillna(0.0)))
    for key, name in sorted(names.items(), key=lambda kv: len(kv[1])):
        stem = name.rsplit(".", 1)[0].lower()
        others = sorted((k for k, n in names.items() if k != key and n.lower().startswith(stem)),
                        key=lambda k: duration[k])
        if stem and others:
            return [key, others[0]]
    return list(ok["key"][:2])


def ads_ui(table: pd.DataFrame) -> list[str]:
    """The search box, the reference and the cuts; returns their keys, the reference first."""
    ok = table[table["status"] == "ok"]
    names = dict(zip(ok["key"], ok["name"]))
    linked = [k for k in dict.fromkeys(st.query_params.get("ads", "").split(",")) if k]
    missing = [k for k in linked if k not in names]
    if missing:
        st.warning("Not in this cache (or failed): " + ", ".join(plain(k) for k in missing))
    wanted = [k for k in linked if k in names] or _default_pair(ok)
    query = st.text_input("Find ads (name or path contains)", st.query_params.get("q", ""), key="ver-q")
    found = ok
    if query:
        needle = query.lower()
        found = ok[ok["name"].str.lower().str.contains(needle, regex=False)
                   | ok["path"].astype(str).str.lower().str.contains(needle, regex=False)]
        more = f"; the first {SHOWN} are offered" if len(found) > SHOWN else ""
        st.caption(f"{len(found)} ads match {plain(query)!r}{more}")
    options = list(dict.fromkeys([*wanted, *found["key"][:SHOWN]]))
    c1, c2 = st.columns([1, 2])
    reference = c1.selectbox("Reference (the master)", options, index=options.index(wanted[0]) if wanted else 0,
                             format_func=lambda k: names[k], key="ver-ref")
    cuts = c2.multiselect(f"Cuts matched against it (1 to {MAX_CUTS})", [k for k in options if k != reference],
                          [k for k in wanted[1:] if k != reference][:MAX_CUTS], max_selections=MAX_CUTS,
                          format_func=lambda k: names[k], key="ver-cuts")
    chosen = [reference, *cuts] if reference else []
    st.query_params.update({"ads": ",".join(chosen), **({"q": query} if query else {})})
    if not query and "q" in st.query_params:
        del st.query_params["q"]
    return chosen


#: what a missing value means in the edit list's columns
HELP = {
    "reference shot": st.column_config.Column(help="The reference's shot (1 = its first); — for a shot the cut added"),
    "cut shot": st.column_config.Column(help="The cut's shot (1 = its first); — for a shot the cut left out"),
    "similarity": st.column_config.Column(help="1 − the shots' colour-layout distance; — when unmatched"),
}


def shown(edit: pd.DataFrame) -> pd.DataFrame:
    """The edit list for display (the CSV keeps the numbers): Δ signed, times in seconds, and "—" (never
    "None") where a shot has no counterpart or a signal no evidence."""
    formats = {c: "{:+.3f}" for c in edit.columns if c.startswith("Δ ")}
    formats |= {c: "{:.2f}" for c in edit.columns if c.endswith("(s)")}
    formats |= {c: "{:.0f}" for c in ("reference shot", "cut shot") if c in edit.columns}
    formats |= {"similarity": "{:.3f}"} if "similarity" in edit.columns else {}
    out = edit.copy()
    for column in out.columns:
        fmt = formats.get(column, "{}")
        out[column] = [("—" if value is None or (isinstance(value, float) and value != value)  # noqa: PLR0124
                        else fmt.format(value)) for value in edit[column]]
    return out


def changes_table(matches: tuple[VersionMatch, ...]) -> pd.DataFrame:
    """Every cut's edit list, one after the other (a `cut` column names the cut)."""
    return pd.concat([m.table().assign(cut=m.cut.name) for m in matches], ignore_index=True)


def render() -> None:
    """The Versions page."""
    st.title("Versions")
    st.caption("Cuts of one ad matched shot by shot against a reference, by the colour layout of their sampled "
               "frames (`python cli.py versions A B`).")
    root = cache_root()
    warn_unknown_params("versions")
    if not open_cache_or_explain(root):
        return
    version = cache_version(root)
    table = library_for(root, norms_ui(root, "ver"))
    if (table["status"] == "ok").sum() < 2:
        st.info("Matching versions needs at least two indexed ads in the cache.")
        return
    chosen = ads_ui(table)
    if len(chosen) < 2:
        st.info("Pick a reference and at least one cut.")
        return
    found = load_versions(str(root), version, tuple(chosen))
    if isinstance(found, str):
        st.error(found)
        return
    matches = found
    for m in matches:
        st.markdown(f"**{plain(m.summary())}**")
    labels = [e for e in matches[0].reference.labels if all(e in m.cut.labels for m in matches)]
    if not labels:
        st.info("These ads were scored by models with no emotion in common.")
        return
    wanted = st.query_params.get("emotion", "happy")
    emotion = st.selectbox("Emotion drawn on the aligned timelines", labels,
                           index=labels.index(wanted) if wanted in labels else 0, key="ver-emotion")
    st.query_params["emotion"] = emotion
    edits = changes_table(matches)
    figure = alignment_figure(matches, emotion)
    chart(figure, edits, f"versions_{matches[0].reference.name}_{emotion}", "ver-align")

    st.subheader("Shot by shot", anchor=False)
    st.caption("Δ: the cut's mean over the shot minus the reference's; evidence: face frames (emotions) or seconds "
               "with sound (audio signals) in the reference's shot → in the cut's. Similarity: 1 − the shots' mean "
               f"colour-layout distance (no match above {matches[0].params.max_distance:g}).")
    sound = any(c.startswith("Δ sound: ") for c in edits.columns)
    with_sound = sound and st.toggle("Show the soundtrack's signals", key="ver-sound")
    for m in matches:
        edit = m.table()
        if not with_sound:
            edit = edit[[c for c in edit.columns if not c.startswith(("Δ sound: ", "seconds of sound"))]]
        counts = ", ".join(f"{m.count(s)} {s}" for s in STATUSES)
        st.markdown(f"{plain(m.cut.name)} against {plain(m.reference.name)}: {counts}")
        st.dataframe(shown(edit), hide_index=True, width="stretch", column_config=HELP)
    st.download_button("Changes (CSV)", export.table_csv(edits), "versions_changes.csv", "text/csv",
                       key="ver-csv", on_click="ignore")


if __name__ == "__main__":  # run as a page by dashboard/main.py's st.navigation
    render()
