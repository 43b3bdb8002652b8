"""Write the model card (Markdown) of a model file from its own metadata.

    python scripts/make_model_card.py emotionnet/assets/model.safetensors > emotionnet/assets/MODEL_CARD.md

Every figure comes from the file, so the card cannot drift from the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emotionnet.digest import file_digest
from emotionnet.models.file import read_model_file

CORPORA = {
    "crema-d": ("CREMA-D", "ODbL 1.0 with Database Contents License",
                "H. Cao et al., CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset, "
                "IEEE Trans. Affective Computing 5(4), 2014"),
    "ravdess": ("RAVDESS (speech)", "CC BY-NC-SA 4.0",
                "S. R. Livingstone, F. A. Russo, The Ryerson Audio-Visual Database of Emotional Speech "
                "and Song (RAVDESS), PLoS ONE 13(5), 2018"),
    "tess": ("TESS", "CC BY-NC-ND 4.0",
             "K. Dupuis, M. K. Pichora-Fuller, Toronto Emotional Speech Set (TESS), University of Toronto, 2010"),
    "savee": ("SAVEE", "free for research use",
              "S. Haq, P. J. B. Jackson, Speaker-dependent audio-visual emotion recognition, AVSP 2009"),
}


def _row(name: str, m: dict) -> str:
    return f"| {name} | {m['uar']:.3f} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['n']} |"


NORMALISATION = {
    "utterance": "mean/variance normalised per band over each window",
    "global": "mean/variance normalised over each window, all bands pooled",
    "none": "not normalised",
    "speaker": ("mean/variance normalised per band with the statistics of the speaker's speech: of all "
                "of a speaker's clips when they are scored together (`evaluate`, `predict --same-speaker`), "
                "of the stream so far (`listen`), or of the recording itself when it is alone"),
}
SPLITS = {
    "test": "test",
    "test_clip": "test, every clip alone (its own context)",
    "val": "val",
}


def render(path: Path) -> str:
    _, meta = read_model_file(path)
    model, training, features = meta["model"], meta["training"], meta["features"]
    digest = file_digest(path, "sha256")
    recipe = training.get("recipe", {})
    fit = recipe.get("fit", {})
    lines = [
        "# EmotionNet model card",
        "",
        f"File `{path.name}`: {path.stat().st_size / 1e6:.2f} MB, sha256 `{digest}`.",
        "",
        "## Model",
        f"- Architecture `{model['arch']}` with {model['parameters']:,} parameters; "
        f"hyper-parameters `{model['hparams']}`.",
        f"- Input: {features['n_mels']}-band log-mel ({features['f_min']:g}-{features['f_max']:g} Hz, "
        f"{features['win_length']}-sample Hann window, hop {features['hop_length']}, FFT {features['n_fft']}) "
        f"at {features['sample_rate']} Hz, {NORMALISATION[features['normalisation']]} "
        f"(`{features['normalisation']}`).",
        f"- Windows of {meta['inference']['window']} s every {meta['inference']['hop']} s; a clip's answer is "
        "the mean of its speech windows' probabilities (energy gate for speech).",
        f"- Output: six classes `{', '.join(meta['labels'])}`, softmax with calibration temperature "
        f"{meta['temperature']:.3f} (fitted on the validation split).",
        "",
        "## Training",
        f"- Data: {', '.join(f'{n:,} {k}' for k, n in training['clips'].items())} clips from {', '.join(CORPORA[c][0] for c in training['corpora'] if c in CORPORA)}; "
        f"split `{training['split']}` (speaker-independent, fixed lists; TESS split by word because it has two speakers).",
        f"- Left out: out-of-set labels {training.get('skipped_labels', {})} (counted, never relabelled); "
        f"CREMA-D clips with conflicting labels {training.get('excluded', [])}.",
        f"- Recipe: batch {fit.get('batch_size')}, AdamW (lr {fit.get('lr')}, weight decay {fit.get('weight_decay')}), "
        f"one-cycle schedule, label smoothing {fit.get('label_smoothing')}, up to {fit.get('epochs')} epochs with "
        f"early stopping on validation UAR (patience {fit.get('patience')}), augmentation "
        f"{'on' if recipe.get('augment') else 'off'} (gain, noise, EQ, band-limiting, reverberation, "
        "vocal-tract warping, SpecAugment), bf16 autocast, seed "
        f"{fit.get('seed')}.",
        f"- Ran {training['epochs']} epochs (best: {training['best_epoch']}) in {training['wall_seconds'] / 60:.1f} min "
        f"on {training.get('machine', 'a 2-core CPU')}, EmotionNet {training['package_version']}, torch {training['torch']}, "
        f"{training['date']}.",
        "",
        "## Results (split v1)",
    ]
    if features["normalisation"] == "speaker":
        lines += ["", "`test` reads each clip against all its speaker's test clips (their audio, never their "
                  "labels), as `emotionnet evaluate` does by default; `test, every clip alone` is what a "
                  "single clip with no other audio of its speaker gets (`evaluate --context clip`)."]
    for split in SPLITS:
        figures = meta["metrics"].get(split)
        if not figures:
            continue
        lines += ["", f"**{SPLITS[split]}**", "", "| data | UAR | accuracy | macro-F1 | clips |", "|---|---|---|---|---|",
                  _row("overall", figures["overall"])]
        lines += [_row(CORPORA.get(c, (c,))[0], m) for c, m in sorted(figures["per_corpus"].items())]
        if split == "test":  # per class for the main figure only
            lines += ["", "| class | recall | precision | F1 |", "|---|---|---|---|"]
            lines += [f"| {label} | {m['recall']:.3f} | {m['precision']:.3f} | {m['f1']:.3f} |"
                      for label, m in figures["per_class"].items()]
    lines += [
        "",
        "For comparison, on the same split the classic peers score 0.616 (openSMILE eGeMAPSv02 + RBF SVM) and "
        "0.654 (ComParE_2016 + linear SVM) test UAR overall, and 0.739 with the ComParE features standardised "
        "per speaker, the peer of the speaker context; see `docs/benchmarks.md` for the side-by-side tables.",
        "",
        "## Reproduce",
        "```bash",
        f"emotionnet train ../shared/data --arch {model['arch']} --normalisation {features['normalisation']} "
        f"--out {path.name}",
        f"emotionnet evaluate ../shared/data --model {path.name}",
        *([f"emotionnet evaluate ../shared/data --model {path.name} --context clip"]
          if features["normalisation"] == "speaker" else []),
        "```",
        "The seed fixes the data order, the augmentation and, since a fix on 2026-11-28, the initial weights. "
        "Models trained before that fix (the shipped one among them) started from unseeded weights, so "
        "retraining lands near their figures, not on them: a re-run of the shipped recipe and seed gave test "
        "UAR 0.745 against 0.738.",
        "",
        "## Limits",
        "- Acted English speech from 110 speakers (82 of them CREMA-D's); spontaneous speech, other languages, "
        "children, and noisy or far-field recordings are outside what it was trained and tested on.",
        "- Six classes only; calm and surprise are not modelled. Emotion is judged per 3 s window.",
        *(["- The speaker context assumes the speaker's audio spans several emotions, as each corpus speaker's "
           "clips do: against a context that is all one emotion, that emotion reads as the speaker's usual "
           "voice. A clip alone scores about 6 points lower (see above)."]
          if features["normalisation"] == "speaker" else []),
        "- Fear and disgust are the hardest classes; confidences are calibrated on the validation split but "
        "not on your data.",
        "- Not for decisions about people (hiring, health, policing): acted emotion is not felt emotion.",
        "",
        "## Licence and citations",
        "The model inherits the corpora's terms, which include non-commercial ones: use it for research "
        "and non-commercial purposes only.",
        "",
    ]
    lines += [f"- {name}: {licence}. {cite}." for name, licence, cite in CORPORA.values()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    print(render(parser.parse_args().model), end="")


if __name__ == "__main__":
    main()
