"""`emotionnet export`: the network of a model file as ONNX, checked against torch."""

from __future__ import annotations

from pathlib import Path

from emotionnet.cli.common import CLIError, add_command, add_model_option

EXAMPLES = """  emotionnet export --onnx fast.onnx --model fast                  the shipped CRNN (the default, whisper-base, is not exportable)
  emotionnet export --onnx my.onnx --model my.safetensors
  emotionnet export --onnx my.onnx --model my.safetensors && emotionnet predict clip.wav --model my.safetensors --backend onnx
The ONNX file takes `features` (batch, n_mels, frames) normalised log-mel windows of the
model's own length and returns `logits` (batch, 6); its metadata_props hold the model file's
JSON under 'emotionnet'. Saved as MODEL.onnx next to MODEL.safetensors, it is what
'--backend onnx' uses for that model file."""


def add_parser(sub) -> None:
    p = add_command(sub, "export", "Export a model's network to ONNX and check it against torch.", EXAMPLES)
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    add_model_option(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random check input")
    p.set_defaults(run=run)


def run(args) -> int:
    from emotionnet.cli.common import load_recognizer
    from emotionnet.digest import file_digest
    from emotionnet.inference.onnx_backend import (
        EXPORT_TOLERANCE,
        OnnxBackendError,
        check_exportable,
        export_difference,
        export_onnx,
    )

    out = Path(args.onnx)
    if out.suffix.lower() != ".onnx":
        raise CLIError(f"{out}: the output name should end in .onnx", "e.g. --onnx model.onnx")
    recognizer = load_recognizer(args.model)
    network, spec = recognizer.network, recognizer.spec
    try:
        check_exportable(spec)  # before a byte is written: no file left behind
    except OnnxBackendError as exc:
        raise CLIError(str(exc), "--model fast exports the shipped CRNN") from None
    try:
        export_onnx(network, recognizer.metadata, out, source_sha1=file_digest(recognizer.model_file))
        difference = export_difference(network, out, spec, args.seed)
    except OSError as exc:
        raise CLIError(f"{out}: cannot write ({exc.strerror or exc})") from None
    except OnnxBackendError as exc:
        raise CLIError(str(exc)) from None
    n_mels, frames = spec.input_shape
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB; input features (batch, {n_mels}, {frames}), "
          f"a {spec.window:g} s window)")
    print(f"onnxruntime vs torch on random input (4, {n_mels}, {frames}): max |logit difference| {difference:.2e}")
    if not difference <= EXPORT_TOLERANCE:
        raise CLIError(f"the exported model differs from torch by {difference:.2e} (more than {EXPORT_TOLERANCE:g})",
                       "please report this with the model file")
    return 0
