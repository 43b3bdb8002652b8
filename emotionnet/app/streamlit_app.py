"""The EmotionNet web app: record in the browser or upload a file, see the emotions.

Started by `emotionnet app`, which listens on 127.0.0.1 only. `streamlit run`
on this file from the repository root reads `.streamlit/config.toml` (127.0.0.1
too); started any other way on a public address, the page answers only
visitors from this machine unless EMOTIONNET_APP_REMOTE=1 is set. The model is
loaded once per server process ($EMOTIONNET_MODEL, else the shipped model) and
every analysis is cached by the audio's content (a few, for half an hour), so
re-runs of the page (a click on a download button, say) cost nothing. Uploads
are limited to MAX_UPLOAD_MB, and memory is handed back after each analysis.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from emotionnet.app.analysis import (
    MAX_SECONDS,
    MAX_UPLOAD_MB,
    SUMMARY_SECONDS,
    Analysis,
    analyse,
    check_upload,
    model_choices,
    moment_rows,
    probability_spec,
    release_memory,
    share_spec,
    spectrogram_png,
    summarise,
    timeline_spec,
    to_csv,
    to_json,
    warm_up,
)
from emotionnet.audio import AudioError
from emotionnet.environment import MODEL_ENV, from_environment
from emotionnet.labels import LABELS
from emotionnet.models.names import models_help

RECORD, UPLOAD = "Record in the browser", "Upload a file"


@st.cache_resource(show_spinner="Loading the model…")
def get_recognizer(path: str | None):
    from emotionnet.inference.recognizer import load_model

    # The app's server process is a surface too: it reads the options once (the model is `path`).
    recognizer = load_model(path, **from_environment(model=False).load_options())
    try:
        warm_up(recognizer)  # so the first recording is answered as fast as the next ones
    except Exception:
        pass
    return recognizer


@st.cache_data(max_entries=8, ttl=1800, show_spinner="Analysing…")
def get_analysis(data: bytes, name: str, path: str | None) -> Analysis:
    try:
        return analyse(get_recognizer(path), data, name, model=path)  # the caption names the selector's choice
    finally:
        release_memory()  # decoding and the STFT of a long upload are hundreds of MB, briefly


@st.cache_data(max_entries=8, ttl=1800, show_spinner=False)
def get_spectrogram(data: bytes, name: str, path: str | None) -> bytes:
    return spectrogram_png(get_analysis(data, name, path))


def remote_visitor_refused() -> bool:
    """A visitor from another machine, on a server not started by `emotionnet app`: not served."""
    address = st.get_option("server.address") or ""
    if address in ("127.0.0.1", "localhost", "::1") or os.environ.get("EMOTIONNET_APP_REMOTE") == "1":
        return False
    return st.context.ip_address is not None  # None: the visitor is on this machine


def main() -> None:
    st.set_page_config(page_title="EmotionNet", page_icon="🎙️")
    st.title("EmotionNet")
    st.caption(f"Emotion in speech: {', '.join(LABELS)}. Audio is analysed on this machine and not kept.")
    if remote_visitor_refused():
        st.error("This app serves the machine it runs on only. Start it with `emotionnet app` "
                 "(127.0.0.1), or set EMOTIONNET_APP_REMOTE=1 to serve other machines on purpose.")
        return

    # `emotionnet app` hands its --model to this server process as $EMOTIONNET_MODEL; it is checked when loaded.
    path = st.selectbox("Model", model_choices(os.environ.get(MODEL_ENV) or None), key="model",
                        help=models_help())
    try:
        get_recognizer(path)
    except Exception as exc:  # ModelFileError mostly; the page must still explain itself
        st.error(f"The model could not be loaded: {exc}")
        st.info("Start the app with a trained model: `emotionnet app --model my.safetensors`.")
        return

    source = st.radio("Audio", [RECORD, UPLOAD], horizontal=True, label_visibility="collapsed", key="source")
    if source == RECORD:
        audio = st.audio_input("Record a few seconds of speech", sample_rate=16_000, key="recording")
    else:
        audio = st.file_uploader(
            f"An audio file: WAV, FLAC, Ogg, MP3 or AIFF, up to {MAX_SECONDS / 60:.0f} minutes "
            f"and {MAX_UPLOAD_MB} MB", key="upload",
        )
    if audio is None:
        st.info("Press the microphone to record, speak for a few seconds, then stop; or upload a file.")
        return

    try:
        check_upload(audio.size, audio.name)
        data = audio.getvalue()
        result = get_analysis(data, audio.name, path)
    except AudioError as exc:
        st.error(f"This audio cannot be analysed: {exc}.")
        st.caption(f"Use speech from 0.25 s to {MAX_SECONDS / 60:.0f} minutes long and up to {MAX_UPLOAD_MB} MB, "
                   "in a format libsndfile reads (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF).")
        return
    except Exception as exc:  # never a traceback page
        st.error(f"Something went wrong while analysing this audio: {exc}")
        return
    try:
        show(result, data, audio.type, get_spectrogram(data, audio.name, path))
    except Exception as exc:
        st.error(f"The results could not be drawn: {exc}")


def show(result: Analysis, data: bytes, mime: str | None, spectrogram: bytes) -> None:
    p = result.prediction
    summary = summarise(result) if result.duration > SUMMARY_SECONDS and result.timeline.speech else None
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        if not p.speech:  # no answer: the guess, if any, is shown as one below, never here
            st.metric("Emotion", "No speech", "a guess only" if p.guess else "nothing to guess",
                      delta_color="off", delta_arrow="off")
        elif summary:  # an average over many emotions says little about a long recording
            main_emotion = summary.main_emotion
            st.metric("Most of the speech", main_emotion, f"{summary.shares[main_emotion]:.0%} of the speech time",
                      delta_color="off", delta_arrow="off")
        else:
            st.metric("Emotion", p.emotion, f"{p.confidence:.0%} confidence", delta_color="off", delta_arrow="off")
        st.caption(f"{result.duration:.1f} s · {len(result.timeline.segments)} window(s) · model {result.model}")
    with right:
        if summary:
            st.vega_lite_chart(share_spec(summary), width="stretch")
        elif result.probability_rows():
            st.vega_lite_chart(probability_spec(result), width="stretch")
            if not p.speech:
                st.caption(f"The model's guess, not an answer: {p.guess.emotion} {p.guess.confidence:.0%}.")
    if summary:
        st.caption(f"Bars: each emotion's share of the {summary.speech_seconds:.0f} s of speech "
                   "(the most likely emotion at each moment).")
        st.subheader("Strongest moments")
        st.dataframe(moment_rows(summary), hide_index=True)
    if not p.speech:
        st.warning("No speech was detected. " + (
            "The bars show what the model guessed from the silence or background sound: not an answer."
            if p.guess else "Every sample is zero (a muted microphone?): there is nothing to guess."))
    st.audio(data, format=mime or "audio/wav")

    st.subheader("Timeline")
    st.vega_lite_chart(timeline_spec(result), width="stretch")
    speech = [s for s in result.timeline.segments if s.speech]
    st.caption(f"{len(speech)} of {len(result.timeline.segments)} windows of "
               f"{result.window:g} s hold speech. Lines: each emotion's probability per window; "
               "strip: the most likely emotion over time; grey: no speech.")

    st.subheader("Log-mel spectrogram")
    st.image(spectrogram)

    stem = Path(result.name).stem or "recording"
    one, two = st.columns(2)
    one.download_button("Download CSV", to_csv(result), f"{stem}-emotions.csv", "text/csv", on_click="ignore")
    two.download_button("Download JSON", to_json(result), f"{stem}-emotions.json", "application/json",
                        on_click="ignore")
    with st.expander("Windows"):
        st.dataframe([{k: v for k, v in s.to_dict().items() if k != "probabilities"}
                      for s in result.timeline.segments], hide_index=True)


main()
