"""Set a model file's temperature to its validation temperature times a scale.

`emotionnet train` applies the recipe's `unseen_corpus_temperature_scale` itself; this
applies a scale to a file trained before, or with another (the weights are untouched):

    python scripts/set_temperature_scale.py emotionnet/assets/model.safetensors 1.4

The scale comes from `benchmarks/generalisation.py` ("Temperature for a corpus the model
never heard"), chosen on LOCO validation splits. Re-export the ONNX file afterwards: it
carries the model file's metadata and hash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from emotionnet.models.file import load_model_file, save_model_file  # noqa: E402
from emotionnet.training.recipe import calibration_record, validation_temperature  # noqa: E402


def set_temperature_scale(path: str | Path, scale: float) -> dict:
    """Rewrite `path` in place with temperature = validation temperature x `scale`; its calibration record."""
    if not 0.05 <= scale <= 20:
        raise ValueError(f"scale {scale:g} is outside 0.05-20")
    model, meta = load_model_file(path)
    record = {**calibration_record(validation_temperature(meta), scale), "set_by": "scripts/set_temperature_scale.py"}
    save_model_file(path, model, {**meta, "temperature": record["temperature"], "calibration": record})
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file to rewrite")
    parser.add_argument("scale", type=float, help="multiplier of the validation temperature")
    args = parser.parse_args(argv)
    record = set_temperature_scale(args.model, args.scale)
    print(f"{args.model}: temperature {record['validation_temperature']:.4f} x {args.scale:g} = "
          f"{record['temperature']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
