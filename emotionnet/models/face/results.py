"""What the face model answers for an image: each face's box and emotion, the largest face first.

The JSON of one image (DESIGN.md, "Face and video"):
`{"path", "face": bool, "emotion", "confidence", "probabilities", "faces": [{"box": [x, y, w, h],
"emotion", "confidence", "probabilities"}]}`; an image without a face is `"face": false`,
`"emotion": null` (as audio without speech is `"speech": false`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FacePrediction:
    """One face: where it is (x, y, w, h in the image's pixels), its emotion and the probability of each label."""

    box: tuple[float, float, float, float]
    emotion: str
    confidence: float
    probabilities: dict[str, float]

    @classmethod
    def from_probabilities(cls, box: tuple[float, ...], probabilities: np.ndarray,
                           labels: tuple[str, ...]) -> FacePrediction:
        best = int(np.argmax(probabilities))
        return cls(tuple(round(float(v), 1) for v in box), labels[best], float(probabilities[best]),
                   {label: float(p) for label, p in zip(labels, probabilities)})

    def to_json(self) -> dict:
        return {"box": list(self.box), "emotion": self.emotion, "confidence": round(self.confidence, 4),
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


@dataclass(frozen=True)
class ImagePrediction:
    """Every face found in one image, largest first; the image's answer is its largest face's."""

    faces: tuple[FacePrediction, ...]

    @property
    def face(self) -> bool:
        return bool(self.faces)

    @property
    def emotion(self) -> str | None:
        return self.faces[0].emotion if self.faces else None

    @property
    def confidence(self) -> float | None:
        return self.faces[0].confidence if self.faces else None

    @property
    def probabilities(self) -> dict[str, float] | None:
        return self.faces[0].probabilities if self.faces else None

    def to_json(self, path: str | None = None) -> dict:
        out: dict = {} if path is None else {"path": path}
        top = self.faces[0].to_json() if self.faces else {"emotion": None, "confidence": None, "probabilities": None}
        out.update({"face": self.face, "emotion": top["emotion"], "confidence": top["confidence"],
                    "probabilities": top["probabilities"], "faces": [f.to_json() for f in self.faces]})
        return out
