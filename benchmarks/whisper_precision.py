"""Does whisper-base give the same answers with its encoder's products in bfloat16? And how much faster?

On a CPU with native bfloat16 (AMX or AVX-512 BF16) `load_model("whisper-base")` runs the encoder
blocks' matrix products in bfloat16 (models/whisper/encoder.py). This scores the same validation
clips (split v3, at most `--per-cell` per corpus x emotion, seeded) both ways, one clip at a time
on one thread, and reports how often the answers agree, each way's UAR per corpus, the largest
change of a probability, and the seconds per clip.

    python -m benchmarks.whisper_precision --json docs/results/whisper-precision.json \\
        > docs/results/whisper-precision.md
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from benchmarks.common import DEFAULT_DATA, clip_figures, cpu_model, finish, labels_of, limited, resolve_data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--per-cell", type=int, default=10, help="validation clips per corpus x emotion")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)

    import torch

    from emotionnet import load_model
    from emotionnet.corpora import find_records, split_of
    from emotionnet.labels import LABELS

    torch.set_num_threads(1)
    records = [r for r in limited(find_records([resolve_data(args.data)]).records, args.per_cell)
               if split_of(r) == "val"]
    recognizer = load_model("whisper-base")
    encoder = recognizer.network.encoder
    probs = {False: [], True: []}
    seconds = {False: 0.0, True: 0.0}
    for record in records:
        for bfloat16 in (False, True):
            encoder.bfloat16_matmuls = bfloat16
            started = time.perf_counter()
            prediction = recognizer.predict(str(record.path))
            seconds[bfloat16] += time.perf_counter() - started
            probs[bfloat16].append([prediction.most_likely.probabilities[k] for k in LABELS])
    y = labels_of(records)
    p32, p16 = np.array(probs[False]), np.array(probs[True])
    change = np.abs(p32 - p16)
    corpora = sorted({r.corpus for r in records})
    per_corpus = {}
    for corpus in corpora:
        rows = np.array([r.corpus == corpus for r in records])
        per_corpus[corpus] = {"float32": clip_figures(y[rows], p32[rows])["uar"],
                              "bfloat16": clip_figures(y[rows], p16[rows])["uar"],
                              "agree": float(np.mean(p32[rows].argmax(1) == p16[rows].argmax(1)))}
    result = {
        "benchmark": "whisper_precision", "cpu": cpu_model(), "clips": len(records),
        "agree": float(np.mean(p32.argmax(1) == p16.argmax(1))),
        "max_probability_change": float(change.max()),
        "mean_probability_change": float(change.mean()),
        "uar": {"float32": float(np.mean([v["float32"] for v in per_corpus.values()])),
                "bfloat16": float(np.mean([v["bfloat16"] for v in per_corpus.values()]))},
        "seconds_per_clip": {"float32": seconds[False] / len(records), "bfloat16": seconds[True] / len(records)},
        "per_corpus": per_corpus,
    }
    lines = [
        f"# whisper-base, encoder products in float32 vs bfloat16 ({len(records)} split v3 validation clips, "
        "each alone, one thread)",
        "",
        f"CPU: {result['cpu']}",
        "",
        f"Same answer on {result['agree']:.1%} of clips; a probability moved by {result['mean_probability_change']:.4f} "
        f"on average, {result['max_probability_change']:.3f} at most. Seconds per clip: float32 "
        f"{result['seconds_per_clip']['float32']:.3f}, bfloat16 {result['seconds_per_clip']['bfloat16']:.3f}.",
        "",
        "| corpus | UAR float32 | UAR bfloat16 | same answer |",
        "|---|---|---|---|",
        *(f"| {c} | {v['float32']:.3f} | {v['bfloat16']:.3f} | {v['agree']:.1%} |" for c, v in per_corpus.items()),
        f"| mean | {result['uar']['float32']:.3f} | {result['uar']['bfloat16']:.3f} | {result['agree']:.1%} |",
    ]
    return finish(result, "\n".join(lines), args.json)


if __name__ == "__main__":
    sys.exit(main())
