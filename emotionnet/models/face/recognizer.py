"""FaceRecognizer: the face model's answer for images and video frames.

    recognizer = load_model("face")
    prediction = recognizer.predict("photo.jpg")      # or an RGB/gray uint8 array, bytes, a PIL image
    prediction.emotion, prediction.faces[0].box
    recognizer.predict_faces(crops)                    # (n, 48, 48) float crops -> (n, 6) probabilities

Each face is found by BlazeFace (detector.py), cropped as FER2013's faces are
(crop.py), and classified by FaceCNN; the softmax is taken over the model's
answered labels only (the network also learnt FER2013's surprise, which is not
one of our six) at the temperature fitted on validation images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emotionnet.models.face.crop import CROP_MODES, CropMode, find_faces
from emotionnet.models.face.detector import FaceDetector
from emotionnet.models.face.images import ImageSource, load_image
from emotionnet.models.face.results import FacePrediction, ImagePrediction
from emotionnet.models.family import FACE

BATCH = 64  # faces per network call


class FaceRecognizer:
    """A face-expression network with its labels and temperature, and the detector that finds its faces."""

    modality = FACE

    def __init__(self, network: nn.Module, labels: Sequence[str], answered: Sequence[int], temperature: float,
                 detector: FaceDetector | None = None, crop: CropMode = "auto", threads: int = 1,
                 flip_average: bool = False, metadata: dict | None = None,
                 model_file: str | Path | None = None) -> None:
        if crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
        self.network = network.eval()
        self.labels = tuple(labels)
        self.answered = list(answered)  # the network outputs that are `labels`, in their order
        self.temperature = float(temperature)
        self.detector = detector or FaceDetector(threads=threads)
        self.crop = crop
        self.threads = threads
        self.flip_average = flip_average  # the logits of each face and its mirror image averaged (chosen on validation)
        self.metadata = metadata or {}
        self.model_file = None if model_file is None else Path(model_file)

    @torch.inference_mode()
    def predict_faces(self, crops: np.ndarray, flip_average: bool | None = None) -> np.ndarray:
        """(n, len(labels)) calibrated probabilities of (n, 48, 48) float crops in [0, 1].

        `flip_average`: also score each mirrored face and average the logits (None: the model file's
        choice, made on validation images)."""
        flip_average = self.flip_average if flip_average is None else flip_average
        crops = np.asarray(crops, dtype=np.float32)
        if crops.ndim != 3:
            raise ValueError(f"face crops must be (n, 48, 48), got shape {crops.shape}")
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            out = []
            for start in range(0, len(crops), BATCH):
                faces = torch.from_numpy(crops[start:start + BATCH]).unsqueeze(1)
                logits = self.network(faces)
                if flip_average:
                    logits = (logits + self.network(faces.flip(-1))) / 2
                logits = logits[:, self.answered]
                out.append(torch.softmax(logits / self.temperature, dim=1).numpy())
        finally:
            torch.set_num_threads(previous)
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict(self, image: ImageSource, *, crop: CropMode | None = None, max_faces: int | None = None,
                name: str | None = None) -> ImagePrediction:
        """Every face of one image (largest first); no face: `.face` is False and `.emotion` None."""
        rgb = load_image(image, name=name)
        crops = find_faces(rgb, self.detector, crop or self.crop, max_faces)
        probabilities = self.predict_faces(np.stack([c.pixels for c in crops])) if crops else []
        # The box is the detector's (a face taken whole is the whole image); the crop is FER2013's square around it.
        return ImagePrediction(tuple(FacePrediction.from_probabilities(c.box.box if c.box else c.region, p, self.labels)
                                     for c, p in zip(crops, probabilities)))

    def score_frames(self, frames: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """Per video frame (H, W, 3 uint8 RGB), the calibrated probabilities of its largest face, or None.

        A frame is a picture with a scene around the face, so the detector always runs (crop="detect").
        Frames are scored without mirror averaging: a window's several frames of the same face average
        out what the mirror image would, at half the cost (9 ms of CPU per 640x480 frame against 13).
        """
        crops = [find_faces(frame, self.detector, "detect", max_faces=1) for frame in frames]
        found = [c[0].pixels for c in crops if c]
        probabilities = iter(self.predict_faces(np.stack(found), flip_average=False) if found else [])
        return [next(probabilities) if c else None for c in crops]
