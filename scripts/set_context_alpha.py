"""Set how much of a speaker's context a whisper stats head reads (`model.hparams.context_alpha`).

A head reads a clip's standardised statistics less alpha x its speaker's mean of them when a
speaker context is given (`predict --same-speaker`, `context=`, `evaluate --context speaker`);
each clip alone answers as before. The weights and the temperature are untouched:

    python scripts/set_context_alpha.py emotionnet/assets/whisper-base.safetensors 0.25

alpha is chosen on leave-one-corpus-out validation by the rule in docs/results/whisper-context.md
(`python -m benchmarks.whisper_head --combine DIR --context`). Write the model card again afterwards
(`scripts/make_model_card.py`): it names the file's hash.
"""

from __future__ import annotations

import argparse
import sys

from emotionnet.models.file import load_model_file, save_model_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="whisper model file to rewrite")
    parser.add_argument("alpha", type=float, help="0 (each clip its own context) to 1 (centred on the speaker)")
    parser.add_argument("--chosen-by", default="docs/results/whisper-context.md, rule C (LOCO held-out validation)")
    args = parser.parse_args(argv)
    model, _, meta = load_model_file(args.model)
    hparams = {**meta["model"]["hparams"], "context_alpha": args.alpha}
    training = {**meta.get("training", {}), "speaker_context": {"alpha": args.alpha, "chosen_by": args.chosen_by,
                                                                "set_by": "scripts/set_context_alpha.py"}}
    save_model_file(args.model, model, {**meta, "model": {**meta["model"], "hparams": hparams}, "training": training})
    print(f"{args.model}: context_alpha {args.alpha:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
