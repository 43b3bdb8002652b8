"""The six emotions, in the fixed order every model output uses."""

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad")
LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
