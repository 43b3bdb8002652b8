"""The EmotionNet web app: record in the browser or upload a file, see the emotions.

Started by `emotionnet app` (or `streamlit run` on this file). The model is
loaded once per server process ($EMOTIONNET_MODEL, else the shipped model)
and every analysis is cached by the audio's content, so re-runs of the page
(a click on a download button, say) cost nothing.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from emotionnet.app.analysis import (
    MAX_SECONDS,
    Analysis,
    analyse,
    model_path,
    probability_spec,
    spectrogram_png,
    timeline_spec,
    to_csv,
    to_json,
    warm_up,
)
from emotionnet.audio import AudioError
from emotionnet.labels import LABELS

RECORD, UPLOAD = "Record in the browser", "Upload a file"


@st.cache_resource(show_spinner="Loading the model…")
def get_recognizer(path: str | None):
    from emotionnet.inference.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer(path)
    try:
        warm_up(recognizer)  # so the first recording is answered as fast as the next ones
    except Exception:
        pass
    return recognizer


@st.cache_data(max_entries=16, show_spinner="Analysing…")
def get_analysis(data: bytes, name: str, path: str | None) -> Analysis:
    return analyse(get_recognizer(path), data, name)


@st.cache_data(max_entries=16, show_spinner=False)
def get_spectrogram(data: bytes, name: str, path: str | None) -> bytes:
    return spectrogram_png(get_analysis(data, name, path))


def main() -> None:
    st.set_page_config(page_title="EmotionNet", page_icon="🎙️")
    st.title("EmotionNet")
    st.caption(f"Emotion in speech: {', '.join(LABELS)}. Audio is analysed on this machine and not kept.")

    path = model_path()
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
            f"An audio file: WAV, FLAC, Ogg, MP3 or AIFF, up to {MAX_SECONDS / 60:.0f} minutes", key="upload",
        )
    if audio is None:
        st.info("Press the microphone to record, speak for a few seconds, then stop; or upload a file.")
        return

    data = audio.getvalue()
    try:
        result = get_analysis(data, audio.name, path)
    except AudioError as exc:
        st.error(f"This audio cannot be analysed: {exc}.")
        st.caption(f"Use speech from 0.25 s to {MAX_SECONDS / 60:.0f} minutes long, "
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
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        st.metric("Emotion", p.emotion, f"{p.confidence:.0%} confidence", delta_color="off", delta_arrow="off")
        st.caption(f"{result.duration:.1f} s · {len(result.timeline.segments)} window(s) · model {result.model}")
    with right:
        st.vega_lite_chart(probability_spec(result), width="stretch")
    if not result.timeline.speech:
        st.warning("No speech was detected: the answer above is a guess from silence or background sound.")
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
