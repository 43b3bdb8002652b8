"""Set a model file's temperature to its validation temperature times a scale.

`emotionnet train` applies the recipe's `unseen_corpus_temperature_scale` itself; this
applies a scale to a file trained before, or with another (the weights are untouched):

    python scripts/set_temperature_scale.py emotionnet/assets/model.safetensors 1.4

The scale is chosen on LOCO validation splits by `emotionnet.training.calibration.unseen_corpus_scale`
(run by `python -m benchmarks.generalisation`, "Temperature for a corpus the model never heard");
this is a thin caller of `emotionnet.training.calibration.set_temperature_scale`. Re-export the
ONNX file afterwards: it carries the model file's metadata and hash.
"""

from __future__ import annotations

import argparse
import sys

from emotionnet.training.calibration import set_temperature_scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file to rewrite")
    parser.add_argument("scale", type=float, help="multiplier of the validation temperature")
    args = parser.parse_args(argv)
    record = set_temperature_scale(args.model, args.scale, set_by="scripts/set_temperature_scale.py")
    print(f"{args.model}: temperature {record['validation_temperature']:.4f} x {args.scale:g} = "
          f"{record['temperature']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
