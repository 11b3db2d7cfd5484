"""Ad: the video, every emotion over time, and why the model scores a moment the way it does."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import streamlit as st
from loaders import (
    NormsChoice,
    cache_root,
    cache_version,
    key_frame_image,
    library_for,
    load_audio_explained,
    load_ads_by_key,
    load_audio_explanation,
    load_bundle,
    load_explanation,
    thumbnail_for,
)
from widgets import (
    ad_search_ui,
    MISSING,
    chart,
    empty_cache_note,
    explain_command,
    missing,
    norms_ui,
    open_cache_or_explain,
    param_float,
    plain,
    plural,
    read_only,
    read_only_note,
    report_ui,
    trust_ui,
    warn_unknown_params,
)

from emocore import charts, queries, usecases
from emocore import render as draw
from emocore.audio.lanes import AUDIO_SIGNALS, LANE_LABELS, short_label
from emocore.audio.render import audio_explanation_figure
from emocore.export import ReportSection
from emocore.preview import choose_player
from emocore.store import AdRow, FrameExplanation, preview_path
from emocore.trust import summary_text

#: Puts the page's video on the selected moment (st.video starts at whole seconds): on load, and again
#: whenever the moment changes (the script's text changes with it, so it runs again).
SEEK_SCRIPT = """<script>(() => { const t = MOMENT; let tries = 0;
const go = () => { const v = document.querySelector('video[data-testid="stVideo"]');
  if (!v) { if (tries++ < 50) setTimeout(go, 100); return; }
  const seek = () => { if (Math.abs(v.currentTime - t) > 0.04) v.currentTime = t; };
  if (v.readyState >= 1) seek();
  v.addEventListener('loadedmetadata', () => setTimeout(seek, 0), { once: true }); };
setTimeout(go, 0); })();</script>"""
SIGNS = {"both": "both", "positive only": "positive", "negative only": "negative"}
#: The signals a soundtrack moment can be explained for (every lane and cue; not the loudness, a level).
EXPLAINABLE = tuple(s for s in AUDIO_SIGNALS if s != "loudness")


@st.cache_data(show_spinner=False, max_entries=256)
def _ad_for_link(root: str, version: int, ref: str) -> str | None:
    """The key a link's `?ad=` names: a key, a key prefix (≥ 6 characters), a file name or a path, as the
    command line takes them (`Store.ad`); None when no ad matches."""
    return usecases.ad_key_for(root, ref)


def link_ad_ui(root: Path, version: int) -> None:
    """A link's `?ad=` that is a key prefix, a name or a path becomes the ad's full key."""
    wanted = st.query_params.get("ad")
    if wanted:
        found = _ad_for_link(str(root), version, wanted)
        if found is not None and found != wanted:
            st.query_params["ad"] = found


def _pick_ad() -> None:
    """A pick in the select box becomes the link (the link says which ad the page shows)."""
    st.query_params.clear()
    st.query_params["ad"] = st.session_state["ad-pick"]


def _default_ad(table: pd.DataFrame) -> str:
    """The ad a link without ?ad= opens: the analysed ad with the most face coverage (the model has the
    most to say about it), the newest of equals."""
    ok = (table["status"] == "ok").to_numpy(dtype=bool)
    coverage = np.nan_to_num(table["face_coverage"].to_numpy(dtype=np.float64, na_value=np.nan), nan=-1.0)
    return str(table["key"].iloc[int(np.argmax(np.where(ok, coverage, -2.0)))])


def ad_picker_ui(root: Path, table: pd.DataFrame) -> str:
    """Which ad: the link's (?ad=KEY), else `_default_ad`; a search box finds any other on the server
    (`widgets.ad_search_ui`): the select box offers at most `queries.SEARCH_LIMIT` ads besides this one."""
    wanted = st.query_params.get("ad")
    exists = bool(wanted) and bool(load_ads_by_key(str(root), cache_version(root), (wanted,)))
    if wanted and not exists:
        st.warning(f"No ad {plain(wanted)} in this cache; pick one below.")
    key = wanted if exists else _default_ad(table)
    options = ad_search_ui(root, "ad", [key])
    st.session_state["ad-pick"] = key  # the link decides (a pick rewrites the link first: _pick_ad)
    st.selectbox("Ad", options.keys, format_func=options.label, key="ad-pick", on_change=_pick_ad)
    if key != wanted:
        st.query_params.clear()
        st.query_params["ad"] = key
    return key


def moment_ui(bundle: queries.AdBundle) -> int:
    """The selected frame: from a click on the timeline, a key frame button, or the link's ?t=."""
    times = bundle.timeline.times
    t = param_float("t", bundle.explained[0][1] if bundle.explained else float(times[0]))
    return int(np.argmin(np.abs(times - t)))


def _select(index: int, time_s: float) -> None:
    st.query_params["t"] = f"{time_s:.3f}"


def explanation_view(root: Path, bundle: queries.AdBundle, frame: FrameExplanation, frame_idx: int) -> None:
    """LIME and SHAP overlays side by side with their trust figures."""
    emotions = sorted({a.emotion for a in frame.attributions})
    wanted = st.query_params.get("emotion")
    top = bundle.ad.labels[int(np.nanargmax(bundle.timeline.raw[frame_idx]))] if not np.isnan(
        bundle.timeline.raw[frame_idx]).all() else emotions[0]
    default = wanted if wanted in emotions else (top if top in emotions else emotions[0])
    c1, c2, c3 = st.columns([2, 2, 3])
    emotion = c1.selectbox("Explain emotion", emotions, index=emotions.index(default), key="ad-emotion")
    wanted_opacity = param_float("opacity", 0.55)
    initial = min(max(0.55 if wanted_opacity is None else wanted_opacity, 0.0), 1.0)
    opacity = c2.slider("Overlay opacity", 0.0, 1.0, initial, 0.05, key="ad-opacity")
    sign_label = c3.radio("Evidence", list(SIGNS), horizontal=True, key="ad-sign",
                          index=list(SIGNS.values()).index(st.query_params.get("sign", "both"))
                          if st.query_params.get("sign", "both") in SIGNS.values() else 0)
    st.query_params.update({"emotion": emotion, "opacity": f"{opacity:g}", "sign": SIGNS[sign_label]})
    key_frame = key_frame_image(root, bundle.ad.key, frame_idx)
    columns = st.columns(2)
    for column, method in zip(columns, ("lime", "shap")):
        found = frame.attribution(emotion, method)
        with column:
            st.markdown(f"**{method.upper()}** — {plain(emotion)}")
            if found is None:
                st.info(f"No {method.upper()} explanation of {plain(emotion)} here.")
                continue
            patch = draw.overlay(frame.image, frame.segments, found.weights, opacity=opacity, sign=SIGNS[sign_label])
            picture = draw.place(key_frame, patch, frame.region) if key_frame is not None else patch
            st.image(picture, width="stretch")
            st.image(patch, width=220, caption="the explained region, enlarged")
            trust_ui(found.trust)
    st.caption("Bluish green raises the score, vermillion lowers it. Each figure has its yardstick: the deletion "
               "check hides the top-weighted regions beside random regions of the same area; LIME–SHAP agreement "
               "sits beside each method's seed-to-seed stability (two methods cannot agree more than each agrees "
               "with itself); LIME's fit R² beside the R² it reaches on pure noise.")


def no_explanation_ui(root: Path, bundle: queries.AdBundle, frame_idx: int) -> None:
    tl, ad = bundle.timeline, bundle.ad
    t = float(tl.times[frame_idx])
    if tl.faces[frame_idx] == 0:
        st.info(f"No face at {t:.1f} s: the face model has nothing to explain there.")
        return
    emotion = ad.labels[int(np.nanargmax(tl.raw[frame_idx]))]
    st.info("This moment has no explanation yet. To compute one:")
    st.code(explain_command(ad.path, t, emotion, root), language="bash")
    if read_only():
        read_only_note("this explanation")
        return
    if st.button(f"Explain {plain(emotion)} at {t:.1f} s now", key="ad-explain-now", icon=":material/psychology:"):
        with st.spinner("Explaining with LIME and SHAP (a few seconds)…"):
            message = _explain_now(str(root), ad, t, emotion)
        if message:
            st.error(plain(message))
        else:
            st.rerun()


@st.cache_resource(show_spinner=False)
def _model(name: str) -> object:
    from emocore.models import load_model

    return load_model(name)


def _explain_now(root: str, ad: AdRow, t: float, emotion: str) -> str | None:
    """Compute one explanation on request (the only place the dashboard runs a model); None if done."""
    from emocore.errors import EmocoreError

    try:
        usecases.explain_moment(root, ad.key, t, emotion, model=_model(ad.model), overlay=False)
    except (EmocoreError, ValueError, OSError, sqlite3.Error, cv2.error) as exc:
        return f"could not explain it: {exc}"
    return None


def key_frames_ui(root: Path, bundle: queries.AdBundle, current: int) -> None:
    if not bundle.explained:
        return
    st.markdown("**Key frames** (explained moments)")
    strip = bundle.explained[:8]
    for column, (index, t) in zip(st.columns(len(strip)), strip):
        with column:
            uri = thumbnail_for(root, bundle.ad.key, index)
            if uri:
                st.image(uri, width="stretch")
            label = f"{t:.1f} s" + (" ●" if index == current else "")
            st.button(label, key=f"ad-key-{index}", on_click=_select, args=(index, t), width="stretch")


def report_sections(root: Path, bundle: queries.AdBundle, timeline: object, row: pd.Series,
                    choice: NormsChoice) -> list[ReportSection]:
    ad = bundle.ad
    figures = {e.emotion: e for e in bundle.emotions}
    summary = pd.DataFrame([
        {"emotion": e, "mean": f.mean, "peak": f.peak, "peak at (s)": f.peak_time_s, "share ≥ threshold": f.share_above,
         "rank score": row.get(f"score_{e}"), "percentile": row.get(f"pct_{e}"), "lift": row.get(f"lift_{e}")}
        for e, f in figures.items()
    ])
    dominant = row.get("dominant")
    dominant = ("too little evidence for a dominant emotion" if pd.isna(dominant)
                else f"dominant emotion {dominant} (highest lift over {_norm_name(choice)})")
    images = []
    for index, t in bundle.explained[:6]:
        found = load_explanation(str(root), cache_version(root), ad.key, index)
        if isinstance(found, str):
            continue
        emotion = sorted({a.emotion for a in found.attributions})[0]
        trust = summary_text([a.trust for a in found.attributions if a.emotion == emotion])
        images.append((f"{t:.1f} s — {emotion}: LIME | SHAP. {trust}",
                       draw.explanation_figure(found, emotion, frame=key_frame_image(root, ad.key, index))))
    report = usecases.ad_report(root, ad.key, norms_dir=choice.root)
    return [
        ReportSection("Emotions over time", f"{ad.name}: {ad.duration_s or 0:.1f} s, {dominant}, raw top emotion "
                      f"{missing(ad.dominant_raw, 'none (no face)')} (highest raw mean), "
                      f"{int(row.get('face_frames', 0) or 0)} face frames"
                      + ("" if ad.face_coverage is None else f", faces in {ad.face_coverage:.0%} of the frames") + ".",
                      (timeline,), (), summary),
        ReportSection("Why: explained key frames", "Bluish green raises the score, vermillion lowers it.", (),
                      tuple(images), None),
        usecases.audio_report_section(report),  # the timeline above holds the soundtrack's lanes
    ]


def summary_ui(ad: AdRow, row: pd.Series, shots: int, choice: NormsChoice) -> None:
    """The ad's headline figures: short metric values (they fit a fifth of the page at 1400 px), what each
    rests on in its help and in a caption beneath."""
    faced = int(row.get("face_frames", 0) or 0) > 0
    dominant = row.get("dominant")
    dominant = None if pd.isna(dominant) else str(dominant)
    a, b, c, d, e = st.columns([1, 1.4, 1.2, 1, 1])
    a.metric("Duration", "unknown" if ad.duration_s is None else f"{ad.duration_s:.1f} s",
             help=f"{plural(shots, 'shot')}; the file's length as its container gives it")
    b.metric("Dominant", dominant or ("no face" if not faced else "thin evidence"),
             help="The emotion with the highest lift over the norm, among those with enough evidence. "
                  + ("No face: " + MISSING["no face"] if not faced else
                     "Thin evidence: " + MISSING["too little evidence"] if not dominant else ""))
    c.metric("Raw top emotion", missing(ad.dominant_raw, "no face"),
             help="The highest raw mean (argmax), the model's bias included: it leans to sad and fear")
    d.metric("Face frames", f"{int(row.get('face_frames', 0) or 0)}",
             help=f"Evidence: sampled frames with a face scored, out of {ad.frames} scored")
    coverage = ad.face_coverage
    e.metric("Faces in", "n/a" if coverage is None else f"{coverage:.0%}",
             help="The share of the scored frames with a face" if coverage is not None
             else "Not measured: the model scores whole frames, not faces")
    faces = ("the model scores whole frames" if coverage is None
             else f"a face in {coverage:.0%} of the {ad.frames} frames scored")
    seconds = float(row.get("face_seconds", 0.0) or 0.0)
    lifted = (f"Dominant: {dominant} (highest lift over {_norm_name(choice)})" if dominant
              else "No face: no emotion to name" if not faced
              else "Too little evidence to name a dominant emotion")
    st.caption(f"Evidence: {seconds:.1f} s with a face, {faces}; {plural(shots, 'shot')}. {lifted}; raw top "
               f"emotion: {missing(ad.dominant_raw, 'none (no face)')} (highest raw mean).")


def _norm_name(choice: NormsChoice) -> str:
    return "this cache's norm" if choice.root is None else f"the norm of {choice.label}"


def against_library_ui(bundle: queries.AdBundle, row: pd.Series, choice: NormsChoice) -> None:
    """Per emotion: the ad's figures beside its percentile and lift in the norm library."""
    figures = {e.emotion: e for e in bundle.emotions}
    table = pd.DataFrame([{
        "emotion": e,
        "mean": None if figures.get(e) is None else figures[e].mean,
        "peak": None if figures.get(e) is None else figures[e].peak,
        "rank score": row.get(f"score_{e}"),
        "percentile": row.get(f"pct_{e}"),
        "lift": row.get(f"lift_{e}"),
    } for e in bundle.ad.labels])
    st.markdown(f"**Against the library** ({plain(_norm_name(choice))})")
    st.dataframe(table, hide_index=True, width="stretch", key="ad-norms", placeholder="—", column_config={
        "mean": st.column_config.NumberColumn(format="%.2f", help="Mean over the face frames (raw); —: no face"),
        "peak": st.column_config.NumberColumn(format="%.2f", help="The highest smoothed value; —: no face"),
        "rank score": st.column_config.NumberColumn(format="%.2f", help="The mean shrunk towards the library's "
                                                                        "mean by how little evidence the ad has; "
                                                                        "—: no face"),
        "percentile": st.column_config.NumberColumn(format="p%.0f", help="p92: higher than 92% of the norm "
                                                                         "library's ads (top 8%); —: too little "
                                                                         "evidence (face frames) to place it"),
        "lift": st.column_config.NumberColumn(format="%.1f×", help="Rank score over the norm library's mean; "
                                                                  "—: no face"),
    })


def soundtrack_note(bundle: queries.AdBundle) -> str:
    """One line on the soundtrack: its evidence (seconds of sound) and what read it, or why there is none."""
    lanes, ad = bundle.lanes, bundle.ad
    if lanes is not None:
        return (f"Soundtrack: {plain(bundle.audio_note)} in the {lanes.seconds} s read (the evidence behind its "
                f"figures), per second of the file; read by {plain(ad.audio_model or 'the audio model')}.")
    return f"Soundtrack: {plain(usecases.panel_note(bundle))}."


def audio_moment_ui(root: Path, version: int, bundle: queries.AdBundle, t: float) -> None:
    """The soundtrack at the selected second: each signal's value there, the peaks to jump to, and why the
    audio model reads the chosen signal there (the stored explanation, or one computed on request)."""
    st.subheader("The soundtrack there", anchor=False)
    audio = bundle.lanes
    if audio is None:
        words = usecases.panel_note(bundle)
        st.info(f"{plain(words[0].upper() + words[1:])}: no soundtrack moment to explain.")
        return
    if audio.seconds == 0:
        st.info("The soundtrack holds no second of sound.")
        return
    second = int(min(max(np.floor(t), 0), audio.seconds - 1))
    explained = load_audio_explained(str(root), version, bundle.ad.key)
    moments: dict[int, list[str]] = {}
    for m in queries.audio_moments(bundle, explained=tuple(explained)):
        moments.setdefault(int(m.time_s), []).append(m.signal)
    if moments:
        st.markdown("**Soundtrack peaks** (the ad's audio key moments; ◆ explained)")
        shown = sorted(moments.items())[:8]
        for column, (p, signals) in zip(st.columns(len(shown)), shown):
            label = (f"{p}–{p + 1} s: {', '.join(short_label(n) for n in signals)}" + (" ◆" if p in explained else "")
                     + (" ●" if p == second else ""))
            column.button(label, key=f"ad-audio-peak-{p}", on_click=_select_audio, args=(p, signals[0]),
                          width="stretch")
    wanted = st.query_params.get("audio")
    values = {name: float(audio.column(name)[second]) for name in EXPLAINABLE}
    strongest = max(("laughter", "applause", "music", "speech"),
                    key=lambda n: -1.0 if np.isnan(values[n]) else values[n])
    default = wanted if wanted in EXPLAINABLE else strongest
    left, right = st.columns([2, 3])
    signal = left.selectbox("Soundtrack signal", EXPLAINABLE, index=EXPLAINABLE.index(default),
                            format_func=LANE_LABELS.get, key="ad-audio-signal")
    st.query_params["audio"] = signal
    if np.isnan(values[signal]):
        right.info(f"No sound in second {second}–{second + 1} s: nothing to explain there.")
        return
    column = audio.column(signal)
    right.markdown(f"Second **{second}–{second + 1} s**: {plain(LANE_LABELS[signal])} **{values[signal]:.2f}** "
                   f"(a probability; the ad's highest: {float(np.nanmax(column)):.2f}, its mean over "
                   f"{audio.sound_seconds} s of sound: {float(np.nanmean(column)):.2f}); loudness "
                   f"{float(audio.loudness_dbfs[second]):.1f} dBFS.")
    audio_explanation_ui(root, version, bundle, second, signal, second in explained)


def _select_audio(second: int, signal: str) -> None:
    st.query_params["t"] = f"{second + 0.5:.3f}"
    st.query_params["audio"] = signal
    st.session_state["ad-audio-signal"] = signal  # the picker follows (its own state would win otherwise)


def audio_explanation_ui(root: Path, version: int, bundle: queries.AdBundle, second: int, signal: str,
                         stored: bool) -> None:
    """The stored explanation of the second for the signal (spectrogram, waveform, LIME and SHAP weights over
    time–frequency regions, with their trust figures), or a button computing it."""
    found = load_audio_explanation(str(root), version, bundle.ad.key, second) if stored else None
    if isinstance(found, str):
        st.error(f"{plain(found)}. Recompute it:")
        found = None
    if found is not None and any(found.attribution(signal, m) for m in ("lime", "shap")):
        methods = tuple(m for m in ("lime", "shap") if found.attribution(signal, m))
        left, right = st.columns([3, 2])
        left.image(audio_explanation_figure(found, signal, methods=methods, width=760), width="stretch")
        with right:
            for method in methods:
                st.markdown(f"**{method.upper()}** — {plain(LANE_LABELS[signal])}")
                trust_ui(found.attribution(signal, method).trust)
        st.caption("Time runs left to right over the second's window, low mel bands at the bottom; bluish green "
                   "regions raise the value, vermillion ones lower it. Scores are "
                   + ("log-odds ln(p/(1−p)), 0 = even odds." if found.space == "log-odds" else "probabilities."))
        return
    st.info(f"No explanation of {plain(LANE_LABELS[signal])} in second {second}–{second + 1} s yet. To compute one:")
    st.code(explain_command(bundle.ad.path, second + 0.5, signal, root), language="bash")
    if read_only():
        read_only_note("this explanation")
        return
    if st.button(f"Explain {short_label(signal)} at {second}–{second + 1} s now", key="ad-audio-explain-now",
                 icon=":material/graphic_eq:"):
        with st.spinner("Explaining with LIME and SHAP over the spectrogram (a few seconds)…"):
            message = _explain_audio_now(str(root), bundle.ad, second, signal)
        if message:
            st.error(plain(message))
        else:
            st.rerun()


@st.cache_resource(show_spinner=False)
def _audio_model() -> object:
    from emocore.audio.yamnet import load_audio_model

    return load_audio_model()


def _explain_audio_now(root: str, ad: AdRow, second: int, signal: str) -> str | None:
    """Explain one soundtrack second on request (the audio model is loaded only here); None if done."""
    from emocore.errors import EmocoreError

    try:
        usecases.explain_audio_moment(root, ad.key, second + 0.5, signal, audio_model=_audio_model(), figure=False)
    except (EmocoreError, ValueError, OSError, sqlite3.Error) as exc:
        return f"could not explain it: {exc}"
    return None


def render() -> None:
    """The Ad page: one ad's figures against the library, its timeline, and why a moment scores as it does."""
    root = cache_root()
    warn_unknown_params("ad")
    if not open_cache_or_explain(root):
        return
    version = cache_version(root)
    norms_choice = norms_ui(root, "ad")
    table = library_for(root, norms_choice)
    if table.empty:
        empty_cache_note(root)
        return
    link_ad_ui(root, version)
    key = ad_picker_ui(root, table)
    bundle = load_bundle(str(root), version, key)
    ad = bundle.ad
    st.title(plain(ad.name), anchor=False)
    if ad.status == "failed":
        st.error(f"Indexing failed: {plain(ad.error)}")
        st.caption(f"File: {plain(ad.path)}")
        return
    tl = bundle.timeline
    library_row = table[table["key"] == ad.key].iloc[0]
    summary_ui(ad, library_row, len(tl.shots) + 1, norms_choice)
    st.caption(soundtrack_note(bundle))

    if not (tl.faces != 0).any():
        st.info("No face was found in this ad: the face model has nothing to score, so the timeline's face "
                "emotions are empty.")
    frame_idx = moment_ui(bundle)
    t = float(tl.times[frame_idx])
    fig = timeline_ui(bundle, library_row, t)  # the page's width: the time axis needs it
    left, right = st.columns([3, 2])
    with left:
        video_ui(root, bundle, frame_idx)
    with right:
        against_library_ui(bundle, library_row, norms_choice)

    st.subheader(f"The moment at {t:.1f} s", anchor=False)
    key_frames_ui(root, bundle, frame_idx)
    explained = dict(bundle.explained)
    if frame_idx in explained:
        found = load_explanation(str(root), version, ad.key, frame_idx)
        if isinstance(found, str):
            st.error(f"{plain(found)}. Recompute it with:")
            st.code(explain_command(ad.path, t, "EMOTION", root), language="bash")
        else:
            explanation_view(root, bundle, found, frame_idx)
    else:
        nearest = min(bundle.explained, key=lambda x: abs(x[1] - t), default=None)
        if nearest:
            st.button(f"Go to the nearest explained moment ({nearest[1]:.1f} s)", key="ad-nearest",
                      on_click=_select, args=nearest)
        no_explanation_ui(root, bundle, frame_idx)

    audio_moment_ui(root, version, bundle, param_float("t", t) or t)

    with st.expander("Report of this ad", icon=":material/summarize:"):
        report_ui(f"{ad.name} — emotion report", lambda: report_sections(root, bundle, fig, library_row, norms_choice),
                  f"{queries.params_summary(ad)} · cache {root.resolve()}", "ad-report",
                  f"{ad.key}:{version}:{norms_choice.label}")


def video_ui(root: Path, bundle: queries.AdBundle, frame_idx: int) -> None:
    """The video from the selected moment (or, for a format browsers cannot play, the frame)."""
    ad = bundle.ad
    t = float(bundle.timeline.times[frame_idx])
    proxy = preview_path(root, ad.content_hash)
    player = choose_player(ad.path, proxy if proxy.is_file() else None)
    if player.path is not None:
        # start_time is whole seconds: the script puts the player on the moment itself
        st.video(str(player.path), format=player.mime, start_time=int(t))
        st.html(SEEK_SCRIPT.replace("MOMENT", f"{t:.3f}"), unsafe_allow_javascript=True)
        preview = f" The original cannot play here ({plain(player.reason)})." if player.source == "preview" else ""
        st.caption(f"Starts at the selected moment ({t:.1f} s).{preview}")
    else:
        st.image(key_frame_image(root, ad.key, frame_idx) if frame_idx in dict(bundle.explained)
                 else thumbnail_for(root, ad.key, frame_idx) or np.zeros((9, 16, 3), np.uint8), width="stretch")
        st.caption(f"The frame at {t:.1f} s: {plain(player.reason)}.")


#: At most this many frame thumbnails go to the browser for the timeline's hover (evenly spread over the ad).
HOVER_THUMBS = 120


def signal_name(ref: str) -> str:
    """How the timeline's picker names a signal: a face emotion as is, a soundtrack lane as "sound: laughter"."""
    return f"sound: {short_label(ref[len('audio:'):])}" if ref.startswith("audio:") else ref


def signals_ui(bundle: queries.AdBundle, row: pd.Series) -> list[str]:
    """The signals drawn: the ad's top three by default, any others one click away; a changed choice is kept in
    the link (`?signals=happy,audio:laughter`, `?signals=all`)."""
    options, default = queries.signal_options(bundle), queries.top_signals(bundle, row)
    linked = st.query_params.get("signals")
    initial = (options if linked == "all" else [] if linked == "none"
               else [r for r in linked.split(",") if r in options] if linked else default)
    shown = st.multiselect(
        "Signals on the timeline", options, initial, format_func=signal_name, key=f"ad-signals-{bundle.ad.key}",
        help=f"By default the ad's {queries.TOP_SIGNALS} strongest signals: the highest lift over the norm, face "
             "emotions and soundtrack lanes alike (signals without a lift follow by their mean). Add any other here.")
    if sorted(shown) == sorted(default):
        st.query_params.pop("signals", None)
    else:
        st.query_params["signals"] = ("all" if sorted(shown) == sorted(options) else ",".join(shown) or "none")
    return shown


def timeline_ui(bundle: queries.AdBundle, row: pd.Series, t: float) -> object:
    """The timeline of the chosen signals (the ad's top three by default), face emotions above, the soundtrack's
    lanes beneath on the same time axis; a click on a point selects that moment (a click on a soundtrack lane:
    that second and signal), hovering one shows that frame. Returns the figure."""
    ad, tl = bundle.ad, bundle.timeline
    left, right = st.columns([5, 1], vertical_alignment="bottom")
    with left:
        shown = signals_ui(bundle, row)
    show_raw = right.toggle("Raw values", key="ad-raw", value=st.query_params.get("show") == "raw",
                            help="Also draw each face emotion's raw per-frame values (dots) under its smoothed line")
    lanes = [ref[len("audio:"):] for ref in shown if ref.startswith("audio:")]
    fig = charts.timeline_figure(
        f"{ad.name}: emotions and soundtrack over time", tl.times, tl.smoothed, tl.raw, list(ad.labels),
        shots=tl.shots, peaks=queries.peaks(bundle), explained=[t for _, t in bundle.explained], selected_s=t,
        emotions=[ref for ref in shown if not ref.startswith("audio:")], show_raw=show_raw,
        audio=usecases.audio_panel(bundle, lanes),
    )
    state = chart(fig, queries.timeline_table(bundle), f"{ad.name}_timeline", "ad-timeline",
                  on_select="rerun", selection_mode="points")
    hover_thumbnails_ui(cache_root(), bundle, "ad-timeline")
    st.caption("Drawn: the ad's three strongest signals (highest lift over the norm) unless you pick others above. "
               "Hover a point to see its frame; click it to see that moment. Triangles mark the peaks (of each "
               "emotion and of laughter, applause and the exciting cue), diamonds the explained moments, dotted "
               "lines the shot boundaries. Soundtrack lanes are per second (a gap: no sound there); loudness is the "
               "RMS level in dBFS (0 = full scale).")
    points = state.selection.points if state else []
    if points:
        picked = _picked(fig, points[0], tl.times)
        now = (st.query_params.get("t"), st.query_params.get("audio") if picked and picked[1] else None)
        if picked is not None and picked != now:
            st.query_params["t"] = picked[0]
            if picked[1]:
                st.query_params["audio"] = picked[1]
                st.session_state["ad-audio-signal"] = picked[1]
            st.rerun()
    return fig


#: Shows a frame's thumbnail beside the pointer while a timeline point is hovered. Plotly's hover label
#: cannot hold an image, and Streamlit reports clicks, not hovers: a listener on the chart's own
#: `plotly_hover` event (Plotly's JavaScript API) does it in the browser, with no rerun. The watcher attaches
#: it to each newly drawn chart (a rerun may draw a new one) and reads the latest thumbnails sent. No markup
#: inside the script: Streamlit's HTML sanitiser drops a script whose text holds a tag.
_HOVER_SCRIPT = """<script>
(() => {
  window.__emocoreHover = __DATA__;
  if (window.__emocoreHoverTimer) return;
  window.__emocoreHoverTimer = setInterval(() => {
    const data = window.__emocoreHover;
    const plot = document.querySelector(`.st-key-${data.key} .js-plotly-plot`);
    if (!plot || typeof plot.on !== "function" || plot.__emocoreHover) return;
    plot.__emocoreHover = true;
    let box = document.getElementById("emocore-hover-thumb");
    if (!box) {
      box = document.createElement("figure");
      box.id = "emocore-hover-thumb";
      box.style.cssText = "position:fixed;z-index:100000;display:none;margin:0;padding:4px;background:#fff;"
        + "border:1px solid #bbb;border-radius:4px;box-shadow:0 2px 8px rgba(0,0,0,.25);pointer-events:none;"
        + "font:12px sans-serif;color:#333;text-align:center";
      const img = document.createElement("img");
      img.style.cssText = "display:block;width:200px;height:auto";
      box.appendChild(img);
      box.appendChild(document.createElement("figcaption"));
      document.body.appendChild(box);
    }
    plot.on("plotly_hover", (event) => {
      const d = window.__emocoreHover, p = event.points && event.points[0];
      if (!p || !d.times.length) return;
      let x = Number(p.x);
      if (String(p.data.meta || "").startsWith("audio: ") && p.data.mode === "lines+markers") x += 0.5;
      let best = 0;
      d.times.forEach((t, i) => { if (Math.abs(t - x) < Math.abs(d.times[best] - x)) best = i; });
      box.querySelector("img").src = d.uris[best];
      box.querySelector("figcaption").textContent = `frame at ${d.times[best].toFixed(1)} s`;
      box.style.display = "block";
      const rect = plot.getBoundingClientRect();
      const cx = event.event ? event.event.clientX : rect.right - 110;
      const cy = event.event ? event.event.clientY : rect.top + 150;
      // above the pointer (Plotly's label sits beside the point), below it near the window's top
      box.style.left = `${Math.min(Math.max(8, cx - 104), window.innerWidth - 220)}px`;
      const above = cy > 200;
      box.style.bottom = above ? `${window.innerHeight - cy + 18}px` : "auto";
      box.style.top = above ? "auto" : `${cy + 24}px`;
    });
    plot.on("plotly_unhover", () => { box.style.display = "none"; });
  }, 250);
})();
</script>"""


def hover_thumbnails_ui(root: Path, bundle: queries.AdBundle, chart_key: str) -> None:
    """Hovering a timeline point shows its frame's thumbnail (at most HOVER_THUMBS of them are sent, evenly
    spread; a point shows the nearest)."""
    tl = bundle.timeline
    count = len(tl.times)
    picks = np.unique(np.linspace(0, count - 1, min(count, HOVER_THUMBS)).round().astype(int)) if count else []
    times, uris = [], []
    for index in picks:
        uri = thumbnail_for(root, bundle.ad.key, int(index))
        if uri:
            times.append(round(float(tl.times[index]), 3))
            uris.append(uri)
    if uris:
        data = json.dumps({"key": chart_key, "times": times, "uris": uris})
        st.html(_HOVER_SCRIPT.replace("__DATA__", data), unsafe_allow_javascript=True)


def _picked(fig: object, point: dict, times: np.ndarray) -> tuple[str, str | None] | None:
    """The moment a clicked point names, as the link says it: (t, the soundtrack signal, or None for a face
    emotion's point or the loudness)."""
    index = point.get("customdata", point.get("point_index"))
    if isinstance(index, dict):
        index = next(iter(index.values()))
    if isinstance(index, list):
        index = index[0]
    if index is None:
        return None
    index = int(float(index))
    curve = point.get("curve_number")
    meta = fig.data[int(curve)].meta if curve is not None and 0 <= int(curve) < len(fig.data) else None
    if isinstance(meta, str) and meta.startswith(charts.AUDIO_PREFIX):  # a soundtrack point carries its second
        signal = meta[len(charts.AUDIO_PREFIX):]
        return f"{index + 0.5:.3f}", None if signal == "loudness" else signal
    if not 0 <= index < len(times):
        return None
    return f"{times[index]:.3f}", None


if __name__ == "__main__":  # run as a page by dashboard/main.py's st.navigation
    render()
