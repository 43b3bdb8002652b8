"""`emotionnet app`: the Streamlit web app on 127.0.0.1 (record in the browser, upload a file, take a photo)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from emotionnet.cli.common import CLIError, add_command, add_model_option

EXAMPLES = """  emotionnet app                                 http://127.0.0.1:8501, the shipped model
  emotionnet app --port 8600 --model my.safetensors"""


def add_parser(sub) -> None:
    p = add_command(sub, "app", "Start the web app: record your voice in the browser, upload audio, a picture "
                    "or a video, or take a photo, and see the emotion: each face's, the voice's timeline, both "
                    "fused for a video.", EXAMPLES)
    p.add_argument("--port", type=int, default=8501, metavar="N", help="port on 127.0.0.1 (default 8501)")
    add_model_option(p)
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for the model (default 1)")
    p.set_defaults(run=run)


def run(args) -> int:
    from emotionnet.app.analysis import MAX_UPLOAD_MB
    from emotionnet.cli.common import load_recognizer, model_settings
    from emotionnet.environment import MODEL_ENV
    from emotionnet.extras import require
    from emotionnet.models.names import is_model_name
    from emotionnet.subprocesses import child_environment

    for package in ("streamlit", "matplotlib"):  # here, not as a traceback from the server
        require(package, "the app", "app")
    if not 0 < args.port < 65536:
        raise CLIError(f"--port {args.port} is not a port number", "use 1024-65535")
    if args.threads < 1:
        raise CLIError("--threads must be at least 1")
    model = args.model or model_settings().model
    load_recognizer(model)  # a bad model is reported here, not as an error page in the browser
    if not port_free(args.port):
        raise CLIError(f"port {args.port} on 127.0.0.1 is in use", "choose another with --port N")

    env = child_environment(os.environ, OMP_NUM_THREADS=str(args.threads))  # not a folder named emotionnet here
    if model:  # a name as it is, a file by its absolute path (the server runs elsewhere)
        env[MODEL_ENV] = model if is_model_name(model) else str(Path(model).resolve())
    script = Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py"
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.address", "127.0.0.1", "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal",
        "--server.maxUploadSize", str(MAX_UPLOAD_MB),
    ]
    print(f"EmotionNet app on http://127.0.0.1:{args.port} (Ctrl-C stops)", flush=True)
    process = subprocess.Popen(command, env=env)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server too, not just this launcher
    try:
        while True:
            # Short waits, not one long one: the model loaded above started torch's threads, and the
            # kernel may hand a signal to one of them; a main thread blocked in a long wait would
            # only run the handler when it next woke (seconds later, issue 31).
            try:
                return process.wait(timeout=SIGNAL_POLL_SECONDS)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        stop(process)
        return 0


SIGNAL_POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 0.5  # Streamlit's own shutdown takes 1.5-2 s; it holds nothing worth waiting for


def stop(process: subprocess.Popen) -> None:
    """Stop the server within about half a second: asked first, then killed (it keeps no state: analyses
    live in its memory only and uploads are never written)."""
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
