"""The EmotionNet web app: record in the browser, upload a file or take a photo, see the emotions.

Audio gets the voice model's answer and timeline; a picture (upload or camera snapshot) each face's box
and emotion; a video the voice, the face and both fused, over time (as `emotionnet predict` answers).

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
    bars_spec,
    check_upload,
    face_rows,
    faces_png,
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
    video_rows,
    warm_up,
)
from emotionnet.audio import AudioError
from emotionnet.environment import MODEL_ENV, from_environment
from emotionnet.errors import ImageError
from emotionnet.labels import LABELS
from emotionnet.media import media_kind
from emotionnet.models.names import DEFAULT_MODEL, FACE_MODEL, models_help

RECORD, UPLOAD, PHOTO = "Record in the browser", "Upload a file", "Take a photo"


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


@st.cache_resource(show_spinner="Loading the face model…")
def get_face_model():
    from emotionnet.inference.recognizer import load_model

    return load_model(FACE_MODEL)


@st.cache_data(max_entries=8, ttl=1800, show_spinner="Looking for faces…")
def get_faces(data: bytes, name: str) -> tuple[dict, bytes]:
    """The picture's JSON answer (as `predict photo.jpg --json`) and the picture with the boxes drawn."""
    prediction = get_face_model().predict(data, name=name)
    return prediction.to_json(), faces_png(data, prediction)


@st.cache_data(max_entries=4, ttl=1800, show_spinner="Analysing the video…")
def get_video(data: bytes, path: str | None) -> dict:
    """The video's JSON answer (as `predict talk.mp4 --json`): fused, voice, face and their timeline."""
    from emotionnet.inference.video_timeline import predict_video

    try:
        return predict_video(get_recognizer(path), data, get_face_model().score_frames).to_dict()
    finally:
        release_memory()


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
    st.caption(f"Emotion in speech, faces and video: {', '.join(LABELS)}. "
               "What you give is analysed on this machine and not kept.")
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

    source = st.radio("Input", [RECORD, UPLOAD, PHOTO], horizontal=True, label_visibility="collapsed",
                      key="source")
    if source == RECORD:
        audio = st.audio_input("Record a few seconds of speech", sample_rate=16_000, key="recording")
    elif source == PHOTO:
        audio = st.camera_input("Take a photo of a face", key="photo")
    else:
        audio = st.file_uploader(
            f"An audio file (WAV, FLAC, Ogg, MP3, AIFF; up to {MAX_SECONDS / 60:.0f} minutes), a picture "
            f"(JPEG, PNG, WebP) or a video (MP4, MKV, WebM, MOV, AVI); up to {MAX_UPLOAD_MB} MB", key="upload",
        )
    if audio is None:
        st.info("Press the microphone to record, speak for a few seconds, then stop; upload a file; "
                "or take a photo.")
        return

    kind = "image" if source == PHOTO else media_kind(audio.getvalue()[:16])  # by content, as `predict` tells
    if kind != "audio":
        show_picture_or_video(audio, kind, path)
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


def show_picture_or_video(upload, kind: str, path: str | None) -> None:
    """A picture: each face's box and answer; a video: fused, voice and face, and their timeline."""
    try:
        check_upload(upload.size, upload.name)
        data = upload.getvalue()
        if kind == "image":
            answer, drawn = get_faces(data, upload.name)
        else:
            video = get_video(data, path)
    except (ImageError, AudioError) as exc:  # VideoError is an AudioError
        st.error(f"This {'picture' if kind == 'image' else 'video'} cannot be analysed: {exc}.")
        return
    except Exception as exc:  # never a traceback page
        st.error(f"Something went wrong while analysing this {kind}: {exc}")
        return
    if kind == "image":  # the captions name the models as the page chose them, as the audio's does
        show_faces(answer, drawn, FACE_MODEL)
    else:
        show_video(video, data, upload.type, f"voice model {path or DEFAULT_MODEL}, face model {FACE_MODEL}")


def show_faces(answer: dict, drawn: bytes, face_model: str) -> None:
    faces = answer["faces"]
    if not faces:
        st.metric("Emotion", "No face found", "nothing to answer", delta_color="off", delta_arrow="off")
        st.image(drawn)
        st.caption(f"face model {face_model}")
        return
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        st.metric("Emotion", answer["emotion"], f"{answer['confidence']:.0%} confidence", delta_color="off",
                  delta_arrow="off")
        st.caption(f"{len(faces)} face(s) · the largest face answers · face model {face_model}")
    with right:
        st.vega_lite_chart(bars_spec(face_rows(answer["probabilities"])), width="stretch")
    st.image(drawn, caption="Each face found, numbered from the largest")
    for number, face in enumerate(faces[1:], 2):
        with st.expander(f"Face {number}: {face['emotion']} {face['confidence']:.0%}"):
            st.vega_lite_chart(bars_spec(face_rows(face["probabilities"])), width="stretch")


def show_video(video: dict, data: bytes, mime: str | None, models: str) -> None:
    def metric(column, title: str, part: dict, absent: str) -> None:
        if part.get("emotion") is None:
            column.metric(title, absent, delta_color="off", delta_arrow="off")
        else:
            column.metric(title, part["emotion"], f"{part['confidence']:.0%} confidence", delta_color="off",
                          delta_arrow="off")

    fused, voice, face = st.columns([2, 1, 1], vertical_alignment="center")
    metric(fused, "Voice and face", video, "No answer")
    metric(voice, "Voice", video["voice"], "No speech")
    metric(face, "Face", video["face"], "No face")
    st.caption(f"{video['duration']:.1f} s · {models}")
    if video.get("probabilities"):
        st.vega_lite_chart(bars_spec(face_rows(video["probabilities"])), width="stretch")
    if video["voice"].get("error"):
        st.warning(f"The sound could not be used: {video['voice']['error']}")
    st.video(data, format=mime or "video/mp4")
    st.subheader("Timeline")
    st.dataframe(video_rows(video), hide_index=True)
    st.caption("Each window's answer from the voice and the face together, the voice alone and the face alone.")


main()
