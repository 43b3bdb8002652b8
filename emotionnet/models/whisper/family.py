"""The `whisper` family: a small head on a frozen, pretrained Whisper-base encoder (head.py, encoder.py).

Only the head's weights are a model file's; after loading, the family attaches the user's
installed encoder, checked against the digest the file records (`_attach`). The encoder is
not exported to ONNX.
"""

from __future__ import annotations

from emotionnet.features import FeatureConfig
from emotionnet.models.family import MAX_WIDTH, HParam, LoadOptions, ModelFamily, ModelSpecError
from emotionnet.models.whisper.frontend import WHISPER_FEATURES

# The pretrained encoders a head may sit on, and the shape each gives it.
ENCODERS = {"openai/whisper-base": {"n_mels": 80, "layers": 6, "width": 512}}
HEADS = ("stats", "attentive")  # head.py: StatsHead, EmotionHead
CACHE_POOL = 4  # head.py's: encoder frames the encoder cache averages (frame_pool is a multiple of it)


def _build(**hparams):
    from emotionnet.models.whisper.head import WhisperEmotionNet

    return WhisperEmotionNet(**hparams)


def _check(hparams: dict, features: FeatureConfig) -> None:
    encoder = ENCODERS.get(hparams["encoder"])
    if encoder is None:
        raise ModelSpecError(f"unknown encoder {hparams['encoder']!r}; this version knows {', '.join(ENCODERS)}")
    digest = hparams["encoder_digest"]
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise ModelSpecError(f"model.hparams.encoder_digest must be a sha256 hex digest, got {digest!r}")
    if features.n_mels != encoder["n_mels"]:
        raise ModelSpecError(f"{hparams['encoder']} hears {encoder['n_mels']} mel bands; the features have "
                             f"{features.n_mels}")
    if hparams["layers"] > encoder["layers"]:
        raise ModelSpecError(f"model.hparams.layers must be an integer from 1 to {encoder['layers']}, "
                             f"got {hparams['layers']!r}")
    if hparams["width"] != encoder["width"]:
        raise ModelSpecError(f"model.hparams.width is {hparams['width']!r}; {hparams['encoder']} is {encoder['width']}")
    if hparams["context_alpha"] and hparams["head"] != "stats":
        raise ModelSpecError("model.hparams.context_alpha must be 0 for an attentive head (only the stats head "
                             "reads a speaker context)")
    if hparams["frame_pool"] % CACHE_POOL:
        raise ModelSpecError(f"model.hparams.frame_pool must be a multiple of {CACHE_POOL} (the encoder cache's "
                             f"pooling), got {hparams['frame_pool']}")


def _require(options: LoadOptions) -> None:
    """MissingExtraError when no Whisper weights are installed and none were named."""
    from emotionnet.extras import MissingExtraError
    from emotionnet.models.whisper.weights import EXTRA_HINT, weights_available

    if not weights_available(options.encoder_weights):  # a core dependency: the install is broken or --no-deps
        raise MissingExtraError("a whisper model", "the whisper-base encoder weights", None, EXTRA_HINT)


def _attach(network, hparams: dict, options: LoadOptions) -> None:
    """The user's Whisper encoder, verified against the file's digest (EncoderWeightsError if not its)."""
    from emotionnet.models.whisper.weights import encoder_for

    _require(options)
    network.attach_encoder(encoder_for(hparams["encoder_digest"], options.encoder_weights, options.compute_type))


FAMILY = ModelFamily(
    name="whisper",
    modality="audio",
    description="a head on the frozen Whisper-base encoder (needs the Whisper-base weights)",
    hparams=(
        HParam("encoder", "openai/whisper-base", "str"),
        HParam("encoder_digest", "", "str"),  # a new model's is its encoder's (training fills it in)
        HParam("layers", 6, "int", 1, 64),  # encoder blocks heard; at most the encoder's (_check)
        HParam("width", 512, "int", 1, MAX_WIDTH),
        HParam("frame_pool", 8, "int", 4, 64),
        HParam("hidden", 256, "int", 2, MAX_WIDTH),
        HParam("attention", 128, "int", 2, MAX_WIDTH),
        HParam("dropout", 0.3, "float", 0, 0.99),
        HParam("center_time", False, "bool"),
        # "stats" generalises better to unseen corpora (docs/benchmarks.md); files written before the
        # stats head existed name no head and were the attentive one.
        HParam("head", "stats", "choice", choices=HEADS, if_absent="attentive"),
        # How much of a speaker's mean statistics a window is read against when a speaker context is
        # given (head.py, docs/results/whisper-context.md); 0, and files written before it: no change.
        HParam("context_alpha", 0.0, "float", 0, 1, if_absent=0.0),
    ),
    build=_build,
    check=_check,
    features=WHISPER_FEATURES,
    recipe="encoder-head",
    attach=_attach,
    require=_require,
    onnx_refusal="their Whisper encoder is not exported to ONNX",
    # Heads written before varied-length training heard their own window only (short clips repeated).
    own_window_if_unstated=True,
)
