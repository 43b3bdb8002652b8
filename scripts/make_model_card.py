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
    "nemo": ("nEMO (Polish)", "CC BY-NC-SA 4.0",
             "I. Christop, nEMO: Dataset of Emotional Speech in Polish, LREC-COLING 2024"),
    "ased": ("ASED v1 (Amharic)", "free for research use",
             "E. A. Retta et al., A New Amharic Speech Emotion Dataset and Classification Benchmark, ACM TALLIP 22(1), 2023"),
    "turev": ("TurEV-DB (Turkish)", "CC BY-NC-ND 4.0",
              "S. F. Canpolat, Z. Ormanoglu, D. Zeyrek, Turkish Emotion Voice Database (TurEV-DB), SLTU-CCURL 2020"),
    "banglaser": ("BanglaSER (Bangla)", "the terms of its Mendeley Data release",
                  "R. K. Das et al., BanglaSER: A speech emotion recognition dataset for the Bangla language, "
                  "Data in Brief 42, 2022"),
}
WHISPER = ("Whisper base encoder (OpenAI, MIT licence), frozen: A. Radford et al., Robust Speech Recognition via "
           "Large-Scale Weak Supervision, ICML 2023")


def _calibration(meta: dict) -> str:
    record = meta.get("calibration")
    if not record or record.get("unseen_corpus_scale", 1.0) == 1.0:
        return "fitted on the validation split's clips, each alone"
    return (f"{record['validation_temperature']:.3f} fitted on the validation split's clips, each alone, times "
            f"{record['unseen_corpus_scale']:g} for a corpus the model never heard (the scale chosen on the "
            "leave-one-corpus-out validation splits; `docs/benchmarks.md`, calibration)")


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
    "test_clip": "test, every clip alone (its own context): the headline",
    "test": "test, every clip read against all its speaker's test clips",
    "val_clip": "val, every clip alone",
    "val": "val, with the speaker's clips",
}


def _whisper_head(h: dict) -> str:
    if h.get("head", "attentive") == "stats":
        return (f"the states of the encoder's first {h['layers']} blocks (and its input), averaged over 80 ms; "
                "each state's mean and standard deviation over the window, standardised with the training "
                "windows' statistics; one linear layer to six logits (a logistic regression).")
    return (f"the states of the encoder's first {h['layers']} blocks (and its input), averaged over "
            f"{h['frame_pool'] * 20} ms, each layer-normalised, mixed by learnt layer weights, projected to "
            f"{h['hidden']}, attentive statistics pooling (attention width {h['attention']}), dropout {h['dropout']}, "
            "six logits.")


def _whisper_training(head: dict, training: dict) -> str:
    masks = "a loss over the classes each corpus has" if head.get("class_masks", True) else \
        "a loss over all six classes"
    if head.get("kind", "attentive") == "stats":
        return (f"Head: one L-BFGS fit of the weighted cross-entropy plus L2 {head['l2']} on every training window, "
                f"{masks}, each corpus x emotion cell weighted alike.")
    return (f"Head: {head['epochs']} epochs x {head['steps_per_epoch']} steps of {head['batch_size']} windows, AdamW "
            f"(lr {head['lr']}, weight decay {head['weight_decay']}), cosine schedule, label smoothing "
            f"{head['label_smoothing']}, frame dropout {head['frame_dropout']}, {masks}, "
            f"sampling balanced across corpora and classes, seed {head['seed']}; the epoch with the best mean "
            f"per-corpus validation UAR kept (epoch {training['best_epoch']}).")


def _whisper_context(h: dict, training: dict) -> list[str]:
    """The card's line on speaker context (none for a head that reads none: each clip is its own context)."""
    alpha = h.get("context_alpha", 0.0)
    if not alpha:
        return []
    chosen = training.get("speaker_context", {}).get("chosen_by", "")
    return [f"- Speaker context (`predict --same-speaker`, `context=`, `evaluate --context speaker`): a window's "
            f"standardised statistics less {alpha:g} x the mean of them over the speaker's windows, so what a voice "
            f"holds in every clip is not read as emotion; without a context each clip is its own, as scored "
            f"below{f' (alpha chosen: {chosen})' if chosen else ''}. A speaker whose context holds one emotion only "
            "loses some of it: docs/results/whisper-context.md."]


def render_whisper(path: Path, meta: dict) -> str:
    """The card of a head on the frozen Whisper-base encoder (`--arch whisper`)."""
    model, training, h = meta["model"], meta["training"], meta["model"]["hparams"]
    head, copies = training["recipe"]["head"], training["recipe"]["augmented_copies"]
    inference, varied = meta["inference"], training["recipe"].get("lengths") == "varied"
    if varied:
        shortest, longest = inference["window_range"]
        windows = (f"a clip up to {inference['window']:g} s scored whole over its real frames (never repeated or "
                   f"padded), a longer file in windows of {inference['window']:g} s every {inference['hop']:g} s; "
                   f"any window from {shortest:g} to {longest:g} s may be asked for, others are refused")
        cells = training["recipe"].get("clips_per_cell") or {}
        drawn = (f" (a fixed draw of at most {', '.join(f'{n} {s}' for s, n in cells.items())} clips per corpus x "
                 "emotion)") if cells else ""
        crops = "one 1-10 s crop of each training clip, " if "crop" in training["recipe"].get("variants", []) else ""
        cached = (f"- Layer statistics cached per clip{drawn}: each clip whole, {crops}{copies} waveform-augmented "
                  f"cop{'y' if copies == 1 else 'ies'} of each training clip, each encoded alone at its own length "
                  "(no repeats, no padding), so the standardisation and the head see clips of every length.")
    else:
        windows = (f"windows of {inference['window']} s every {inference['hop']} s with no padding to 30 s "
                   "(a shorter clip repeated to fill one, as in training; other windows are refused)")
        cached = (f"- Encoder states cached once per window, for each clip clean and {copies} waveform-augmented "
                  f"cop{'y' if copies == 1 else 'ies'} per training clip (speed, EQ, band-limiting, synthetic rooms, "
                  "white/brown noise, level; none of them a channel of the channel suite).")
    lines = [
        "# EmotionNet model card: whisper-base (the default model)",
        "",
        f"File `{path.name}`: {path.stat().st_size / 1e6:.2f} MB (the head), sha256 `{file_digest(path, 'sha256')}`.",
        "",
        "## Model",
        f"- {WHISPER}; its weights are not in the file but come from the Whisper-base weight packages (dependencies of "
        f"emotionnet) or a Whisper base you name (`encoder_weights=`, $EMOTIONNET_WHISPER), checked against the digest `{h['encoder_digest']}` (20,593,665 float16 parameters).",
        f"- Input: Whisper's 80-band log-mel (25 ms Hann window, 10 ms hop, log10 clamped 8 decades under the "
        f"window's peak, (x + 4) / 4), {windows}; a clip's answer is the mean of its speech windows' probabilities.",
        f"- Head ({model['parameters']:,} parameters): {_whisper_head(h)}",
        f"- Output: `{', '.join(meta['labels'])}`, softmax with temperature {meta['temperature']:.3f}: "
        f"{_calibration(meta)}.",
        *_whisper_context(h, training),
        "",
        "## Training",
        f"- Data: {', '.join(f'{n:,} {k}' for k, n in training['clips'].items())} clips from "
        f"{', '.join(CORPORA[c][0] for c in training['corpora'] if c in CORPORA)}; split `{training['split']}`.",
        cached,
        f"- {_whisper_training(head, training)}",
        f"- {training['wall_seconds'] / 60:.1f} min with the encoder cache filled, EmotionNet "
        f"{training['package_version']}, torch {training['torch']}, {training['date']}.",
        "",
        f"## Results (split {training['split']}, each clip alone)",
    ]
    for split in ("test", "val"):
        figures = meta["metrics"].get(split)
        if figures:
            lines += ["", f"**{split}**", "", "| data | UAR | accuracy | macro-F1 | clips |", "|---|---|---|---|---|",
                      _row("overall", figures["overall"])]
            lines += [_row(CORPORA.get(c, (c,))[0], m) for c, m in sorted(figures["per_corpus"].items())]
    lines += [
        "",
        "Leave-one-corpus-out, the channel suite, calibration and speed: `docs/benchmarks.md` (whisper-base).",
        "",
        "## Reproduce",
        "```bash",
        f"pip install emotionnet\nemotionnet train ../shared/data --arch whisper --out {path.name}",
        f"emotionnet evaluate ../shared/data --model {path.name}",
        "```",
        "",
        "## Limits",
        "- Acted speech in English, Polish, Amharic, Turkish and Bangla. Whisper's encoder heard 680,000 hours "
        "of speech in about 100 languages, which is why this model is the one for voices and languages no "
        "training corpus had; it is still judged on acted emotion.",
        "- About five times the `fast` model's compute with the encoder's products in bfloat16 (CPUs with AMX or "
        "AVX-512 BF16), eight times in float32 elsewhere (`docs/results/speed-whisper-base.md`).",
        "- Not for decisions about people (hiring, health, policing): acted emotion is not felt emotion.",
        "",
        "## Licence and citations",
        "The head inherits the corpora's terms, which include non-commercial ones; the encoder is MIT.",
        "",
        f"- {WHISPER}.",
    ]
    lines += [f"- {name}: {licence}. {cite}." for name, licence, cite in CORPORA.values()]
    return "\n".join(lines) + "\n"


def render(path: Path) -> str:
    _, meta = read_model_file(path)
    if meta["model"]["arch"] == "whisper":
        return render_whisper(path, meta)
    model, training, features = meta["model"], meta["training"], meta["features"]
    digest = file_digest(path, "sha256")
    recipe = training.get("recipe", {})
    fit = recipe.get("fit", {})
    lines = [
        "# EmotionNet model card: fast (the CRNN)",
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
        f"{meta['temperature']:.3f}: {_calibration(meta)}.",
        "",
        "## Training",
        f"- Data: {', '.join(f'{n:,} {k}' for k, n in training['clips'].items())} clips from {', '.join(CORPORA[c][0] for c in training['corpora'] if c in CORPORA)}; "
        f"split `{training['split']}` (speaker-independent, fixed lists; TESS split by word because it has two speakers).",
        f"- Left out: out-of-set labels {training.get('skipped_labels', {})} (counted, never relabelled); "
        f"CREMA-D clips with conflicting labels {training.get('excluded', [])}.",
        f"- Recipe: batch {fit.get('batch_size')}, AdamW (lr {fit.get('lr')}, weight decay {fit.get('weight_decay')}), "
        f"one-cycle schedule, label smoothing {fit.get('label_smoothing')}, up to {fit.get('epochs')} epochs with "
        f"early stopping on validation UAR (patience {fit.get('patience')}), augmentation "
        f"{'on' if recipe.get('augment') else 'off'} (level -30 to +10 dB, noise, EQ, band-limiting, "
        "reverberation, vocal-tract warping, speaking rate, SpecAugment), a loss over the classes each corpus has, "
        "sampling balanced across corpora and classes, bf16 autocast, seed "
        f"{fit.get('seed')}.",
        f"- Ran {training['epochs']} epochs (best: {training['best_epoch']}) in {training['wall_seconds'] / 60:.1f} min "
        f"on {training.get('machine', 'a 2-core CPU')}, EmotionNet {training['package_version']}, torch {training['torch']}, "
        f"{training['date']}.",
        "",
        f"## Results (split {training['split']})",
    ]
    if features["normalisation"] == "speaker":
        lines += ["", "A clip alone is how a user's clip arrives (`emotionnet evaluate`, by default); the speaker "
                  "context reads each clip against all its speaker's test clips (their audio, never their labels: "
                  "`evaluate --context speaker`), an emotion-balanced context no real recording has. "
                  "Leave-one-corpus-out, the channel suite and calibration are in `docs/benchmarks.md`."]
    for split in SPLITS:
        figures = meta["metrics"].get(split)
        if not figures:
            continue
        lines += ["", f"**{SPLITS[split]}**", "", "| data | UAR | accuracy | macro-F1 | clips |", "|---|---|---|---|---|",
                  _row("overall", figures["overall"])]
        lines += [_row(CORPORA.get(c, (c,))[0], m) for c, m in sorted(figures["per_corpus"].items())]
        if split == "test_clip":  # per class for the main figure only
            lines += ["", "| class | recall | precision | F1 |", "|---|---|---|---|"]
            lines += [f"| {label} | {m['recall']:.3f} | {m['precision']:.3f} | {m['f1']:.3f} |"
                      for label, m in figures["per_class"].items()]
    lines += [
        "",
        "The classic peers (openSMILE eGeMAPS and ComParE SVMs) on the same data, leave-one-corpus-out and "
        "the channel suite are side by side in `docs/benchmarks.md`.",
        "",
        "## Reproduce",
        "```bash",
        f"emotionnet train ../shared/data --out {path.name}          # the default recipe, seed {fit.get('seed')}",
        f"emotionnet evaluate ../shared/data --model {path.name}",
        *([f"emotionnet evaluate ../shared/data --model {path.name} --context speaker"]
          if features["normalisation"] == "speaker" else []),
        "```",
        "The seed fixes the initial weights, the data order and the augmentation; bf16 kernels on another "
        "CPU can still move the last digits.",
        "",
        "## Limits",
        "- Acted speech in English, Polish, Amharic and Turkish; spontaneous speech, other languages, children "
        "and far-field recordings are outside what it was trained and tested on (the channel suite in "
        "`docs/benchmarks.md` shows how it holds up on telephone, codecs, rooms, noise and a laptop microphone).",
        "- Six classes only; calm and surprise are not modelled. Emotion is judged per 3 s window.",
        *(["- The speaker context assumes the speaker's audio spans several emotions, as each corpus speaker's "
           "clips do: against a context that is all one emotion, that emotion reads as the speaker's usual "
           "voice."]
          if features["normalisation"] == "speaker" else []),
        "- Fear and disgust are the hardest classes. Confidences are calibrated on the validation split, not on "
        "your data: on a corpus a model never heard (leave-one-corpus-out in `docs/benchmarks.md`) they still "
        "overstate how often it is right.",
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
