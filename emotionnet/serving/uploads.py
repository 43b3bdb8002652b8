"""Request bodies in bounded memory: up to `SPOOL_BYTES` in memory, past that in a temporary file.

Twenty-four 49 MB uploads held in memory took a service from 1.2 to 3.2 GB
(issue 30); spooled, each costs at most `SPOOL_BYTES` of memory, and the bytes
on their way in are capped as a whole (`BodyLimitMiddleware`'s in-flight budget).
"""

from __future__ import annotations

import os
import tempfile

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from emotionnet.serving.errors import api_error

SPOOL_BYTES = 2**20  # a body past this goes to a temporary file
CHUNK_BYTES = 2**16  # read from a multipart file part at a time
# Bodies that are certainly not audio; anything else is read as audio, whose format is judged by content
# (form-urlencoded included: it is what `curl --data-binary @clip.wav` sends unless told otherwise).
NOT_AUDIO = ("application/json",)
NO_AUDIO = ("the request holds no audio (send the file's bytes as the body, or multipart/form-data with the file "
            "in a field named 'file')")


class Upload:
    """One request's audio: its bytes, or past `SPOOL_BYTES` the path of a temporary file (`close` deletes it)."""

    def __init__(self, name: str | None = None):
        self.name = name
        self.size = 0
        self._memory = bytearray()
        self._file = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._file is None and self.size <= SPOOL_BYTES:
            self._memory += chunk
            return
        if self._file is None:
            self._file = tempfile.NamedTemporaryFile(prefix="emotionnet-upload-", delete=False)
            self._file.write(self._memory)
            self._memory = bytearray()
        self._file.write(chunk)

    @property
    def source(self) -> bytes | str:
        """What the decoder reads: the bytes, or the temporary file's path."""
        if self._file is None:
            return bytes(self._memory)
        self._file.flush()
        return self._file.name

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            try:
                os.unlink(self._file.name)
            except FileNotFoundError:
                pass
            self._file = None
        self._memory = bytearray()


def client_closed() -> HTTPException:
    """The client hung up before its body arrived: counted as such, not as a fault of the service (issue 30)."""
    return api_error(499, "client_closed", "the client closed the connection before the body arrived")


async def read_upload(request: Request) -> Upload:
    """The audio of a predict request: multipart field `file`, or the whole body. 422 `missing_file` without any."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in NOT_AUDIO or content_type.startswith("text/"):
        raise api_error(415, "unsupported_media_type", f"a body of type {content_type} is not audio (send the "
                        "file's bytes, e.g. as application/octet-stream, or multipart with a field 'file')")
    upload = Upload()
    try:
        if content_type == "multipart/form-data":
            await _read_multipart(request, upload)
        else:
            async for chunk in request.stream():
                upload.write(chunk)
    except ClientDisconnect:
        upload.close()
        raise client_closed() from None
    except BaseException:
        upload.close()
        raise
    if upload.size == 0:
        raise api_error(422, "missing_file", NO_AUDIO)
    return upload


async def _read_multipart(request: Request, upload: Upload) -> None:
    try:
        form = await request.form(max_files=1, max_fields=16)
    except ClientDisconnect:
        raise
    except HTTPException as exc:
        if isinstance(exc.detail, dict):  # ours: the body is over the size limit
            raise
        # Starlette's 400 for too many files or fields
        raise api_error(422, "invalid_request", f"bad multipart body ({exc.detail})") from None
    except Exception as exc:  # malformed multipart: python-multipart raises several types
        raise api_error(422, "invalid_request", f"malformed multipart body ({exc})") from None
    try:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise api_error(422, "missing_file", NO_AUDIO)
        upload.name = part.filename
        while chunk := await part.read(CHUNK_BYTES):
            upload.write(chunk)
    finally:
        await form.close()
