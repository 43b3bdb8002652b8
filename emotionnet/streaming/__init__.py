"""Live emotion from a stream of audio: a microphone, a file played in real time, any chunks.

    from emotionnet import load_model
    from emotionnet.streaming import MicrophoneSource, StreamEngine

    engine = StreamEngine(load_model(), hop=0.5)
    for result in engine.run(MicrophoneSource()):
        print(f"{result.time:6.1f} s", result.emotion or "·")
"""

from emotionnet.streaming.engine import Chunk, RingBuffer, StreamEngine, StreamResult
from emotionnet.streaming.sources import (
    ArraySource,
    FileSource,
    MicrophoneError,
    MicrophoneSource,
    list_input_devices,
)
from emotionnet.streaming.tally import Tally

__all__ = [
    "ArraySource", "Chunk", "FileSource", "MicrophoneError", "MicrophoneSource", "RingBuffer",
    "StreamEngine", "StreamResult", "Tally", "list_input_devices",
]
