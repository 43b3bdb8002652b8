"""`emotionnet export`: the network of a model file as ONNX, checked against torch."""

from __future__ import annotations

from pathlib import Path

from emotionnet.cli.common import CLIError, add_command

EXAMPLES = """  emotionnet export --onnx emotionnet.onnx                         the shipped model
  emotionnet export --onnx my.onnx --model my.safetensors
  emotionnet export --onnx my.onnx --model my.safetensors && emotionnet predict clip.wav --model my.safetensors --backend onnx
The ONNX file takes `features` (batch, n_mels, frames) normalised log-mel windows of the
model's own length and returns `logits` (batch, 6); its metadata_props hold the model file's
JSON under 'emotionnet'. Saved as MODEL.onnx next to MODEL.safetensors, it is what
'--backend onnx' uses for that model file."""

TOLERANCE = 1e-4


def add_parser(sub) -> None:
    p = add_command(sub, "export", "Export a model's network to ONNX and check it against torch.", EXAMPLES)
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--model", metavar="FILE", help="model file (default: the shipped model)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random check input")
    p.set_defaults(run=run)


def run(args) -> int:
    import numpy as np
    import torch

    from emotionnet.cli.common import load_recognizer
    from emotionnet.digest import file_digest
    from emotionnet.inference.onnx_backend import OnnxBackendError, OnnxScorer, export_onnx

    out = Path(args.onnx)
    if out.suffix.lower() != ".onnx":
        raise CLIError(f"{out}: the output name should end in .onnx", "e.g. --onnx model.onnx")
    recognizer = load_recognizer(args.model)
    model, metadata = recognizer.scorer, recognizer.metadata
    n_mels, frames = recognizer.features.n_mels, recognizer.frames(recognizer.window)
    try:
        export_onnx(model, metadata, out, source_sha1=file_digest(recognizer.model_file))
        scorer = OnnxScorer(out, n_mels, frames)
    except OSError as exc:
        raise CLIError(f"{out}: cannot write ({exc.strerror or exc})") from None
    except OnnxBackendError as exc:
        raise CLIError(str(exc)) from None

    generator = torch.Generator().manual_seed(args.seed)
    check = torch.randn(4, n_mels, frames, generator=generator)
    with torch.inference_mode():
        expected = model(check)
    difference = float(np.abs(scorer(check).numpy() - expected.numpy()).max())
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.2f} MB; input features (batch, {n_mels}, {frames}), "
          f"a {recognizer.window:g} s window)")
    print(f"onnxruntime vs torch on random input (4, {n_mels}, {frames}): max |logit difference| {difference:.2e}")
    if not difference <= TOLERANCE:
        raise CLIError(f"the exported model differs from torch by {difference:.2e} (more than {TOLERANCE:g})",
                       "please report this with the model file")
    return 0
