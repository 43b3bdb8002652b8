"""`emotionnet serve`: every endpoint and every error through FastAPI's TestClient, and one real server process."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile
from conftest import REPO, cli_env, voiced

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'emotionnet[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from emotionnet import LABELS, load_model  # noqa: E402
from emotionnet.cli.main import main  # noqa: E402
from emotionnet.inference.recognizer import EmotionRecognizer  # noqa: E402
from emotionnet.inference.results import FileResult  # noqa: E402
from emotionnet.serving import ServeSettings, create_app  # noqa: E402
from emotionnet.serving.docs import swagger_assets  # noqa: E402
from emotionnet.serving.model import ServedModel  # noqa: E402

pytestmark = pytest.mark.slow  # browser, Ray, service and training tests (pyproject markers)

SR = 16_000
STREAM_KEYS = {"time", "start", "speech", "emotion", "confidence", "probabilities", "raw_probabilities",
               "level_db", "latency_ms", "partial"}


def wav_bytes(audio: np.ndarray, rate: int = SR, format: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format=format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def recognizer(tiny_model_file):
    return load_model(tiny_model_file)


@pytest.fixture(scope="module")
def clip() -> bytes:
    return wav_bytes(voiced(3.0, seed=7))


LOCAL = "http://127.0.0.1:8000"  # a keyless service answers its loopback names only (TestClient's own is testserver)
STREAM = "ws://127.0.0.1:8000/v1/stream"


def client_for(recognizer, model_class=ServedModel, **settings) -> TestClient:
    # Server errors come back as answers (as over the network), not as exceptions in the test.
    return TestClient(create_app(ServeSettings(**settings), model_class(recognizer)), raise_server_exceptions=False,
                      base_url=LOCAL)


@pytest.fixture(scope="module")
def client(recognizer):
    with client_for(recognizer) as c:
        yield c


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.text
    return body


# POST /v1/predict


def test_raw_body_answers_the_predict_json_object(client, recognizer, clip):
    response = client.post("/v1/predict", content=clip, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200
    expected = FileResult(None, recognizer.predict_timeline(clip)).to_dict()  # what `predict --json` prints for it
    body = response.json()
    assert response.headers["X-EmotionNet-Model"] == "tiny.safetensors"  # which model answered
    assert set(body) == set(expected) and body["path"] is None and body["emotion"] == expected["emotion"]
    assert body["duration"] == expected["duration"] and list(body["probabilities"]) == list(LABELS)
    assert list(body["probabilities"].values()) == pytest.approx(list(expected["probabilities"].values()), abs=1e-6)


def test_multipart_upload_names_the_file(client, clip):
    response = client.post("/v1/predict", files={"file": ("call 7.wav", clip, "audio/wav")})
    assert response.status_code == 200
    body = response.json()
    assert body["path"] == "call 7.wav" and body["emotion"] in LABELS and body["duration"] == pytest.approx(3.0)


def test_format_is_judged_by_content_at_any_rate(client):
    flac = wav_bytes(voiced(2.0, sample_rate=44_100, seed=3), 44_100, "FLAC")
    response = client.post("/v1/predict", content=flac, headers={"Content-Type": "audio/wav"})
    assert response.status_code == 200 and response.json()["duration"] == pytest.approx(2.0)
    # what `curl --data-binary @clip.flac` sends by default
    curl = client.post("/v1/predict", content=flac, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert curl.status_code == 200


def test_long_audio_has_a_timeline_unless_asked_not_to(client):
    long = wav_bytes(voiced(8.0, seed=2))
    segments = client.post("/v1/predict?window=2&hop=1", content=long).json()["segments"]
    assert [s["start"] for s in segments[:3]] == [0.0, 1.0, 2.0] and segments[-1]["end"] == pytest.approx(8.0)
    assert "segments" not in client.post("/v1/predict?timeline=false", content=long).json()


def test_bad_audio_is_400(client):
    assert_error(client.post("/v1/predict", content=b"RIFF, but not a wave file at all"), 400, "bad_audio")
    assert_error(client.post("/v1/predict", content=wav_bytes(voiced(0.1))), 400, "bad_audio")  # too short
    silence = client.post("/v1/predict", content=wav_bytes(np.zeros(SR, np.float32)))  # not bad: no speech
    assert silence.status_code == 200 and silence.json()["speech"] is False


def test_non_audio_content_types_are_415(client, clip):
    assert_error(client.post("/v1/predict", json={"audio": "base64?"}), 415, "unsupported_media_type")
    assert_error(client.post("/v1/predict", content=clip, headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type")


def test_invalid_requests_are_422(client, clip):
    assert_error(client.post("/v1/predict?window=0.1", content=clip), 422, "invalid_request")
    assert_error(client.post("/v1/predict?window=2&hop=3", content=clip), 422, "invalid_request")
    assert_error(client.post("/v1/predict?timeline=maybe", content=clip), 422, "invalid_request")
    # No audio in the request, however it happens: one status and code (issue 31)
    assert_error(client.post("/v1/predict", files={"audio": ("a.wav", clip)}), 422, "missing_file")
    assert_error(client.post("/v1/predict", content=b""), 422, "missing_file")
    assert_error(client.post("/v1/predict"), 422, "missing_file")
    assert_error(client.post("/v1/predict", data={"file": "not a file"}, files={"other": ("x", b"x")}),
                 422, "missing_file")
    two = client.post("/v1/predict", files=[("file", ("a.wav", clip)), ("file", ("b.wav", clip))])
    assert_error(two, 422, "invalid_request")
    garbled = client.post("/v1/predict", content=b"--x\r\nnonsense", headers={"Content-Type": "multipart/form-data"})
    assert_error(garbled, 422, "invalid_request")


def test_uploads_over_the_limit_are_413(recognizer, clip):
    with client_for(recognizer, max_upload_mb=0.05) as small:  # 52 kB; the clip is 96 kB
        assert_error(small.post("/v1/predict", content=clip), 413, "too_large")
        assert_error(small.post("/v1/predict", files={"file": ("a.wav", clip)}), 413, "too_large")
        chunked = small.post("/v1/predict", content=iter([clip[:40_000], clip[40_000:]]))  # no Content-Length
        assert_error(chunked, 413, "too_large")
        assert small.post("/v1/predict", content=wav_bytes(voiced(1.0))).status_code == 200


def test_audio_over_the_duration_limit_is_413(recognizer, clip):
    with client_for(recognizer, max_audio_seconds=2.0) as short:
        body = assert_error(short.post("/v1/predict", content=clip), 413, "audio_too_long")
        assert "too long" in body["error"]["message"]


class DecoderFindsMoreModel(ServedModel):
    """Scores with a lower duration limit than the service's header check: as when a file's header
    understated its length and decoding finds it too long."""

    def score_uploads(self, uploads, window, hop, max_seconds):
        return super().score_uploads(uploads, window, hop, 125.0)


def test_a_long_file_found_too_long_while_decoding_is_413_not_400(recognizer):
    from emotionnet.errors import AudioTooLongError

    long_file = wav_bytes(np.zeros(130 * SR, np.float32))  # over 120 s: the block path
    [answer] = DecoderFindsMoreModel(recognizer).score_uploads([("long.wav", long_file)], None, None, 125.0)
    assert isinstance(answer, AudioTooLongError) and str(answer).startswith("long.wav: too long"), answer
    with client_for(recognizer, DecoderFindsMoreModel) as strict:
        body = assert_error(strict.post("/v1/predict", files={"file": ("long.wav", long_file)}), 413, "audio_too_long")
        assert body["error"]["message"].startswith("long.wav: too long (130.0 s")


def test_api_key(recognizer, clip):
    with client_for(recognizer, api_key="s3cret") as keyed:
        response = assert_error(keyed.post("/v1/predict", content=clip), 401, "unauthorized")
        assert response and keyed.post("/v1/predict", content=clip).headers["WWW-Authenticate"] == "Bearer"
        assert_error(keyed.post("/v1/predict", content=clip, headers={"Authorization": "Bearer nope"}),
                     401, "unauthorized")
        assert_error(keyed.get("/metrics"), 401, "unauthorized")
        # the API's description follows the API's rule (issue 31)
        assert_error(keyed.get("/openapi.json"), 401, "unauthorized")
        assert_error(keyed.get("/docs"), 401, "unauthorized")
        key = {"Authorization": "Bearer s3cret"}
        assert keyed.get("/openapi.json", headers=key).json()["paths"] and keyed.get("/docs", headers=key).status_code == 200
        assert keyed.post("/v1/predict", content=clip, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert keyed.get("/healthz").status_code == 200 and keyed.get("/readyz").status_code == 200
        with keyed.websocket_connect(f"{STREAM}?sample_rate=16000") as ws:
            assert ws.receive_json()["error"]["code"] == "unauthorized"


class BlockingModel(ServedModel):
    """Scoring waits until released: the queue fills up behind it."""

    release = threading.Event()

    def score_uploads(self, uploads, window, hop, max_seconds):
        assert self.release.wait(30)
        return super().score_uploads(uploads, window, hop, max_seconds)


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_full_queue_answers_503_with_retry_after(recognizer, clip):
    BlockingModel.release.clear()
    with client_for(recognizer, BlockingModel, queue_size=1, threads=1, max_batch=1) as busy:
        service = busy.app.state.service
        answers = {}

        def post(name):
            answers[name] = busy.post("/v1/predict", content=clip)

        first = threading.Thread(target=post, args=("first",))
        first.start()
        wait_for(lambda: service.queue.running == 1)  # being scored
        second = threading.Thread(target=post, args=("second",))
        second.start()
        wait_for(lambda: service.queue.waiting == 1)  # the queue (size 1) is full
        response = busy.post("/v1/predict", content=clip)
        assert_error(response, 503, "busy")
        assert response.headers["Retry-After"] == "1"
        BlockingModel.release.set()
        first.join(30)
        second.join(30)
        assert answers["first"].status_code == answers["second"].status_code == 200
        assert 'emotionnet_errors_total{code="busy"} 1.0' in busy.get("/metrics").text


def test_a_request_over_its_time_limit_is_503(recognizer, clip):
    BlockingModel.release.clear()
    with client_for(recognizer, BlockingModel, request_timeout=0.2) as slow:
        response = slow.post("/v1/predict", content=clip)
        BlockingModel.release.set()
        body = assert_error(response, 503, "busy")
        assert "timed out" in body["error"]["message"] and response.headers["Retry-After"]


class BrokenNetwork:
    def __call__(self, inputs):
        raise RuntimeError("a bug deep inside")


class BrokenModel(ServedModel):
    def __init__(self, recognizer):
        super().__init__(EmotionRecognizer.from_model(BrokenNetwork(), recognizer.metadata, recognizer.spec))


def test_an_internal_error_is_json_without_a_traceback(recognizer, clip):
    with client_for(recognizer, BrokenModel) as broken:
        response = broken.post("/v1/predict", content=clip)
        assert_error(response, 500, "internal")
        assert "deep inside" not in response.text


class PickyNetwork:
    """Fails on its first call (the shared batch) and its third (the second clip, scored alone), as a bug might
    on some rare input."""

    def __init__(self, network):
        self.network, self.calls = network, 0

    def __call__(self, inputs):
        self.calls += 1
        if self.calls in (1, 3):
            raise RuntimeError("cannot score this one")
        return self.network(inputs)


def test_a_failing_clip_does_not_fail_the_requests_batched_with_it(recognizer):
    from emotionnet.serving.app import PredictJob, make_work

    picky = EmotionRecognizer.from_model(PickyNetwork(recognizer.network), recognizer.metadata, recognizer.spec)
    work = make_work(ServedModel(picky), ServeSettings())
    jobs = [PredictJob(wav_bytes(voiced(seconds, seed=1)), "clip", None, None) for seconds in (3.0, 2.0, 1.0)]
    jobs.append(PredictJob(b"junk", "junk", None, None))
    good, bad, other, junk = work(jobs)
    assert good.duration == pytest.approx(3.0) and other.duration == pytest.approx(1.0)
    assert isinstance(bad, RuntimeError) and isinstance(junk, ValueError) and "junk" in str(junk)


def test_unknown_paths_and_methods_are_json(client):
    assert_error(client.get("/v2/predict"), 404, "not_found")
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed")


# Health, metrics, docs


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["waiting"] == 0


def test_metrics_count_requests_latency_audio_and_errors(recognizer, clip):
    with client_for(recognizer) as fresh:
        fresh.post("/v1/predict", content=clip)
        fresh.post("/v1/predict", content=b"junk")
        text = fresh.get("/metrics").text
    assert 'emotionnet_requests_total{path="/v1/predict",status="200"} 1.0' in text
    assert 'emotionnet_requests_total{path="/v1/predict",status="400"} 1.0' in text
    assert 'emotionnet_request_seconds_count{path="/v1/predict"} 2.0' in text
    assert 'emotionnet_audio_seconds_total{source="predict"} 3.0' in text
    assert 'emotionnet_errors_total{code="bad_audio"} 1.0' in text


def test_openapi_docs(client):
    page = client.get("/docs").text
    assert "swagger" in page.lower()
    if swagger_assets():  # served by this process: the page works with no internet
        assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(body)
    assert {"400", "401", "413", "415", "422", "503"} <= set(spec["paths"]["/v1/predict"]["post"]["responses"])


# WS /v1/stream


def stream_results(ws, chunks: list[bytes]) -> list[dict]:
    for chunk in chunks:
        ws.send_bytes(chunk)
    ws.send_text("end")
    results = []
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            return results
        results.append(json.loads(message["text"]))


def test_stream_sends_one_result_per_hop(client):
    pcm = (voiced(3.0, seed=5) * 32767).astype("<i2").tobytes()
    with client.websocket_connect(f"{STREAM}?sample_rate=16000&hop=0.5") as ws:
        results = stream_results(ws, [pcm[i:i + 3001] for i in range(0, len(pcm), 3001)])  # odd sizes
    assert [r["time"] for r in results] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    assert set(results[0]) == STREAM_KEYS and results[-1]["emotion"] in LABELS


def test_stream_of_float32_stereo_at_48_khz(client):
    mono = voiced(2.0, sample_rate=48_000, seed=6)
    stereo = np.stack([mono, mono], axis=1).astype("<f4").tobytes()
    with client.websocket_connect(f"{STREAM}?sample_rate=48000&format=f32le&channels=2") as ws:
        results = stream_results(ws, [stereo[i:i + 38_400] for i in range(0, len(stereo), 38_400)])
    assert len(results) == 4 and results[-1]["time"] == pytest.approx(2.0, abs=0.02)


@pytest.mark.parametrize("query, problem", [
    ("sample_rate=16000&format=mp3", "format must be one of s16le, f32le"),
    ("sample_rate=100", "sample_rate must be between"),
    ("sample_rate=16000&hop=0", "hop must be between"),
    ("sample_rate=16000&channels=x", "bad query parameter"),
    ("hop=0.5", "sample_rate is required"),  # raw PCM does not say its rate: no silent 16 kHz (issue 31)
])
def test_stream_refuses_bad_parameters_with_the_reason_in_the_close(client, query, problem):
    with client.websocket_connect(f"{STREAM}?{query}") as ws:
        error = ws.receive_json()["error"]
        assert error["code"] == "invalid_request" and problem in error["message"]
        close = ws.receive()
    assert close["type"] == "websocket.close" and close["code"] == 1003 and problem in close["reason"]


def test_streams_over_the_limit_are_refused(recognizer):
    with client_for(recognizer, max_streams=1) as limited:
        with limited.websocket_connect(f"{STREAM}?sample_rate=16000&hop=0.5") as first:
            first.send_bytes((voiced(0.5) * 32767).astype("<i2").tobytes())
            assert first.receive_json()["time"] == pytest.approx(0.5)  # the first stream is open and running
            with limited.websocket_connect(f"{STREAM}?sample_rate=16000") as second:
                assert second.receive_json()["error"]["code"] == "busy"
        assert limited.get("/readyz").json()["streams"] == 0


# The command


def test_serve_off_loopback_needs_an_api_key(capsys, monkeypatch):
    monkeypatch.delenv("EMOTIONNET_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 1
    assert "--api-key" in capsys.readouterr().err


def test_serve_with_a_bad_model_file_is_one_clear_error(capsys, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    assert main(["serve", "--model", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"emotionnet: error: {bad}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_real_server_answers_http_and_websocket(tiny_model_file, clip):
    httpx = pytest.importorskip("httpx")
    websockets = pytest.importorskip("websockets.sync.client", reason="the WebSocket client needs websockets")
    port = free_port()
    env = cli_env()
    server = subprocess.Popen([sys.executable, "-m", "emotionnet", "serve", "--port", str(port),
                               "--model", str(tiny_model_file)], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.2)
        response = httpx.post(f"{base}/v1/predict", files={"file": ("clip.wav", clip)}, timeout=30)
        assert response.status_code == 200 and response.json()["path"] == "clip.wav"
        assert httpx.post(f"{base}/v1/predict", content=b"junk", timeout=30).json()["error"]["code"] == "bad_audio"
        pcm = (voiced(1.0) * 32767).astype("<i2").tobytes()
        with websockets.connect(f"ws://127.0.0.1:{port}/v1/stream?sample_rate=16000&hop=0.25", open_timeout=30) as ws:
            ws.send(pcm)
            ws.send("end")
            results = [json.loads(message) for message in ws]  # until the server closes
        assert [r["time"] for r in results] == pytest.approx([0.25, 0.5, 0.75, 1.0])
        assert "emotionnet_audio_seconds_total" in httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: a graceful stop
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = server.stdout.read()
    assert server.returncode == 0 and "Traceback" not in output, output


def test_worker_processes_build_their_app_from_the_environment(tiny_model_file, clip, monkeypatch):
    """`serve --workers N` hands its settings to each uvicorn worker through the environment."""
    import torch

    from emotionnet.serving.app import create_app_from_env
    from emotionnet.serving.settings import SETTINGS_ENV

    settings = ServeSettings(model=str(tiny_model_file), api_key="k", max_audio_seconds=2.0)
    monkeypatch.setenv(SETTINGS_ENV, settings.to_env())
    threads = torch.get_num_threads()
    try:
        with TestClient(create_app_from_env()) as worker:
            assert worker.get("/readyz").json()["model"] == tiny_model_file.name  # not where it lies on disk
            assert_error(worker.post("/v1/predict", content=clip), 401, "unauthorized")
            response = worker.post("/v1/predict", content=clip, headers={"Authorization": "Bearer k"})
            assert_error(response, 413, "audio_too_long")
    finally:
        torch.set_num_threads(threads)
