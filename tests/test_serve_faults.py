"""`emotionnet serve` under faults and hostile input (issues 30 and 31): each test fails on the service before them.

Slow work is a network that sleeps per batch of windows (no CPU needed), so the
timings hold on a busy machine; the socket-level tests run the real uvicorn
server in a thread on a free 127.0.0.1 port.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import numpy as np
import pytest
import soundfile
from conftest import voiced

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'emotionnet[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
from starlette.websockets import WebSocketDisconnect  # noqa: E402
from test_serve import STREAM, assert_error, client_for, free_port, wav_bytes  # noqa: E402

from emotionnet import load_model  # noqa: E402
from emotionnet.cli.main import main  # noqa: E402
from emotionnet.inference.recognizer import EmotionRecognizer  # noqa: E402
from emotionnet.serving import ServeSettings, create_app  # noqa: E402
from emotionnet.serving.model import ServedModel  # noqa: E402
from emotionnet.serving.uploads import SPOOL_BYTES  # noqa: E402

SR = 16_000


@pytest.fixture(scope="module")
def recognizer(tiny_model_file):
    return load_model(tiny_model_file)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As `serve` runs the model: one thread per inference thread (several contend on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SlowNetwork:
    """The network, `seconds` slower per batch of windows; counts its calls."""

    def __init__(self, network, seconds: float):
        self.network, self.seconds, self.calls = network, seconds, 0

    def __call__(self, inputs):
        self.calls += 1
        time.sleep(self.seconds)
        return self.network(inputs)


def slow(recognizer, seconds: float = 0.05) -> tuple[EmotionRecognizer, SlowNetwork]:
    network = SlowNetwork(recognizer.network, seconds)
    return EmotionRecognizer.from_model(network, recognizer.metadata, recognizer.spec), network


def timed_post(client, body: bytes, query: str = "", into: dict | None = None, name: str = "") -> float:
    start = time.perf_counter()
    response = client.post(f"/v1/predict{query}", content=body)
    if into is not None:
        into[name] = response
    return time.perf_counter() - start


# Item 4: a tiny hop, too many windows, abandoned work, long requests beside short ones


def test_a_tiny_hop_is_refused_and_so_is_a_request_of_too_many_windows(recognizer):
    eight = wav_bytes(voiced(8.0, seed=1))
    with client_for(recognizer, max_windows=20) as client:
        body = assert_error(client.post("/v1/predict?window=0.5&hop=0.0001", content=eight), 422, "invalid_request")
        assert "hop" in body["error"]["message"]
        body = assert_error(client.post("/v1/predict?window=0.5&hop=0.1", content=eight), 413, "too_many_windows")
        assert "76 windows; at most 20" in body["error"]["message"]
        assert client.post("/v1/predict?window=2&hop=1", content=eight).status_code == 200


def test_the_work_of_a_timed_out_request_stops(recognizer):
    model, network = slow(recognizer, 0.05)
    minute = wav_bytes(voiced(60.0, seed=2))  # 571 windows at hop 0.1: 72 batches, 3.6 s of work
    with client_for(model, request_timeout=0.5, max_windows=1000) as client:
        assert_error(client.post("/v1/predict?hop=0.1", content=minute), 503, "busy")
        time.sleep(0.5)
        calls = network.calls
        time.sleep(0.5)
        assert network.calls == calls < 30  # stopped soon after the answer, not left running
        assert client.post("/v1/predict", content=wav_bytes(voiced(3.0))).status_code == 200


def test_short_requests_go_before_a_long_one(recognizer):
    model, network = slow(recognizer, 0.05)
    minute, clip = wav_bytes(voiced(60.0, seed=2)), wav_bytes(voiced(3.0, seed=3))
    with client_for(model, max_windows=1000) as client:
        answers: dict = {}
        long = threading.Thread(target=timed_post, args=(client, minute, "?hop=0.1", answers, "long"))
        long.start()
        time.sleep(0.5)  # the long one is being scored
        seconds = [timed_post(client, clip) for _ in range(2)]
        long_done = "long" in answers
        long.join(30)
    assert not long_done and max(seconds) < 2.0, seconds  # not behind the long one's 3.6 s
    assert answers["long"].status_code == 200


def test_a_long_file_is_scored_in_blocks_as_the_python_api_scores_it(recognizer):
    long = wav_bytes(voiced(130.0, seed=6))  # over 120 s: blocks; 86 windows: the heavy thread
    with client_for(recognizer) as client:
        response = client.post("/v1/predict", files={"file": ("talk.wav", long)})
    assert response.status_code == 200, response.text
    expected = recognizer.predict_timeline(long)
    body = response.json()
    assert body["path"] == "talk.wav" and body["duration"] == pytest.approx(130.0)
    assert len(body["segments"]) == len(expected.segments)


# Item 6: bodies spooled to disk, bytes in flight capped


class RecordingModel(ServedModel):
    """Remembers what the decoder was given."""

    sources: list = []

    def score_uploads(self, uploads, window, hop, max_seconds):
        RecordingModel.sources.extend(source for _, source in uploads)
        return super().score_uploads(uploads, window, hop, max_seconds)


def test_a_large_body_is_spooled_to_disk_and_deleted_after(recognizer):
    RecordingModel.sources = []
    small = wav_bytes(voiced(3.0))
    large = wav_bytes(voiced(40.0))  # 1.3 MB
    assert len(small) < SPOOL_BYTES < len(large)
    with client_for(recognizer, RecordingModel) as client:
        assert client.post("/v1/predict", content=small).status_code == 200
        assert client.post("/v1/predict", files={"file": ("long.wav", large)}).status_code == 200
        assert client.post("/v1/predict", content=iter([large[:500_000], large[500_000:]])).status_code == 200
    in_memory, *on_disk = RecordingModel.sources
    assert isinstance(in_memory, bytes) and len(on_disk) == 2
    for path in on_disk:
        assert isinstance(path, str)
        with pytest.raises(FileNotFoundError):  # deleted once answered
            open(path, "rb")


class HeldModel(ServedModel):
    release = threading.Event()

    def score_uploads(self, uploads, window, hop, max_seconds):
        assert HeldModel.release.wait(30)
        return super().score_uploads(uploads, window, hop, max_seconds)


def test_bodies_in_flight_are_capped(recognizer):
    body = wav_bytes(voiced(20.0, seed=4))  # 0.64 MB
    HeldModel.release.clear()
    with client_for(recognizer, HeldModel, max_upload_mb=1, max_inflight_mb=1) as client:
        answers: dict = {}
        first = threading.Thread(target=timed_post, args=(client, body, "", answers, "first"))
        first.start()
        time.sleep(0.5)  # the first body is held, waiting for the model
        response = client.post("/v1/predict", content=body)
        HeldModel.release.set()
        first.join(30)
        body_of = assert_error(response, 503, "busy")
        assert "on their way in" in body_of["error"]["message"] and response.headers["Retry-After"]
        assert answers["first"].status_code == 200
        assert client.post("/v1/predict", content=body).status_code == 200  # the budget was given back


# Item 8: idle streams, large stream messages, a stream beside predict


def test_an_idle_stream_is_closed(recognizer):
    with client_for(recognizer, stream_idle_timeout=0.3) as client:
        with client.websocket_connect(f"{STREAM}?sample_rate=16000") as ws:
            assert ws.receive_json()["error"]["code"] == "idle"
            close = ws.receive()
        assert close["code"] == 1001 and "nothing received" in close["reason"]
        assert client.get("/readyz").json()["streams"] == 0


def test_a_stream_message_over_the_audio_cap_closes_the_stream(recognizer):
    with client_for(recognizer, max_message_seconds=1.0) as client:
        with client.websocket_connect(f"{STREAM}?sample_rate=16000") as ws:
            ws.send_bytes((voiced(2.0) * 20000).astype("<i2").tobytes())
            assert ws.receive_json()["error"]["code"] == "too_large"
            assert ws.receive()["code"] == 1009


def test_a_stream_cannot_starve_predict(recognizer):
    model, network = slow(recognizer, 0.05)
    pcm = (voiced(10.0, seed=5) * 20000).astype("<i2").tobytes()  # 100 hops at 0.1 s: 5 s of work
    with client_for(model) as client:
        with client.websocket_connect(f"{STREAM}?sample_rate=16000&hop=0.1") as ws:
            ws.send_bytes(pcm)
            assert "time" in ws.receive_json()  # the stream's work has begun
            seconds = timed_post(client, wav_bytes(voiced(3.0)))
            calls = network.calls
    assert seconds < 2.0 and calls < 90, (seconds, calls)


# Item 12: a client that hangs up mid-upload; item 7: slow readers (the real server)


@pytest.fixture
def real_server(recognizer):
    """The app on uvicorn, as `serve` runs it (read deadline 2 s, at most 20 connections), in a thread."""
    import uvicorn

    from emotionnet.serving.connections import uvicorn_options

    settings = ServeSettings(read_timeout=2.0, max_connections=20)
    port = free_port()
    config = uvicorn.Config(create_app(settings, ServedModel(recognizer)), host="127.0.0.1", port=port,
                            log_level="warning", **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def get(port: int, path: str) -> tuple[int, str]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


def closed_within(s: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it was still open after `seconds`."""
    s.settimeout(seconds)
    received = b""
    try:
        while chunk := s.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def test_a_client_that_hangs_up_mid_upload_is_a_client_close_not_a_500(real_server):
    with socket.create_connection(("127.0.0.1", real_server)) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n" + bytes(1000))
        time.sleep(0.2)
    time.sleep(0.3)
    status, metrics = get(real_server, "/metrics")
    assert 'emotionnet_errors_total{code="client_closed"} 1.0' in metrics
    assert 'code="internal"' not in metrics


def test_slow_readers_are_cut_off_and_cannot_keep_others_out(real_server):
    headers = socket.create_connection(("127.0.0.1", real_server))
    headers.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends its headers
    body = socket.create_connection(("127.0.0.1", real_server))
    body.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc")
    assert closed_within(headers, 4.0) is not None  # closed after the 2 s read deadline
    answer = closed_within(body, 4.0)
    assert answer is not None and b" 408 " in answer.split(b"\r\n")[0] and b"read_timeout" in answer
    trickling = [socket.create_connection(("127.0.0.1", real_server)) for _ in range(30)]  # over the cap of 20
    for s in trickling:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(1.2)  # reading for over a second: the longest reader makes room for a new connection
    start = time.monotonic()
    assert get(real_server, "/healthz")[0] == 200 and time.monotonic() - start < 1.0
    for s in trickling + [headers, body]:
        s.close()


# Item 13: serve's settings; item 15: the smaller ones


@pytest.mark.parametrize("argv, problem", [
    (["--max-seconds", "nan"], "--max-seconds nan is not allowed"),
    (["--max-upload-mb", "nan"], "--max-upload-mb nan is not allowed"),
    (["--max-upload-mb", "inf"], "--max-upload-mb inf is not allowed"),
    (["--port", "99999"], "--port 99999 is not a port number (use 1-65535)"),
])
def test_serve_refuses_bad_settings_in_one_line(capsys, argv, problem):
    assert main(["serve", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"emotionnet: error: {problem}") and err.count("\n") == 1 and "Traceback" not in err


def test_an_api_key_with_spaces_around_it_is_stripped_at_startup(monkeypatch):
    from emotionnet.cli.serve import settings_from

    args = argparse.Namespace(host="127.0.0.1", port=8000, api_key=" s3cret\n", max_upload_mb=50.0,
                              max_seconds=600.0, max_video_seconds=120.0, timeout=30.0, queue=64, workers=1,
                              threads=1, model=None, face_model="face")
    assert settings_from(args).api_key == "s3cret"
    with pytest.raises(ValueError, match="spaces around it"):
        ServeSettings(api_key="s3cret ")  # in Python it is refused: it could never match


def test_serve_given_a_folder_as_model_says_so(capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path)]) == 1
    assert "is a folder, not a model file" in capsys.readouterr().err


def test_readiness_does_not_show_where_the_model_lies(recognizer, tiny_model_file):
    with client_for(recognizer) as client:
        assert client.get("/readyz").json()["model"] == tiny_model_file.name


def test_a_wav_of_over_64_channels_is_refused_plainly(recognizer):
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, np.tile(voiced(1.0)[:, None], (1, 65)), SR, format="WAV", subtype="PCM_16")
    with client_for(recognizer) as client:
        body = assert_error(client.post("/v1/predict", content=buffer.getvalue()), 400, "bad_audio")
    assert "65 channels; at most 64" in body["error"]["message"] and "samples.T" not in body["error"]["message"]


# Item 14: a keyless service refuses web pages of other sites and other host names


def test_a_keyless_service_refuses_other_sites_and_host_names(recognizer):
    clip = wav_bytes(voiced(2.0))
    with client_for(recognizer) as client:
        evil = {"Origin": "http://evil.example"}
        assert_error(client.post("/v1/predict", content=clip, headers=evil), 403, "forbidden")
        assert client.post("/v1/predict", content=clip, headers={"Origin": "http://localhost:3000"}).status_code == 200
        assert_error(client.get("/readyz", headers={"Host": "rebound.example:8000"}), 403, "forbidden")
        assert client.get("/readyz", headers={"Host": "[::1]:8000"}).status_code == 200
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect(f"{STREAM}?sample_rate=16000", headers=evil):
                pass
    with client_for(recognizer, api_key="k") as keyed:  # with a key, the key decides
        response = keyed.post("/v1/predict", content=clip, headers={**evil, "Authorization": "Bearer k"})
        assert response.status_code == 200


# Issue 31 item 6: the WebSocket in the API's description


def test_the_api_description_holds_the_stream_protocol(recognizer):
    with client_for(recognizer) as client:
        description = client.get("/openapi.json").json()["info"]["description"]
    assert "/v1/stream" in description and "sample_rate" in description and "1013" in description
