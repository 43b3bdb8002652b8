"""`emotionnet serve`: the recognizer as an HTTP + WebSocket service (needs `pip install emotionnet[serve]`).

    from emotionnet.serving import ServeSettings, create_app
    app = create_app(ServeSettings(api_key="s3cret"))
"""

from emotionnet.serving.app import create_app
from emotionnet.serving.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
