"""Classic peers on split v1: openSMILE functionals + SVM, the baselines EmotionNet must beat.

The methods, their features and their cache are benchmarks/peer_methods.py;
this script runs them and prints the table.

    python -m benchmarks.peers                         # full run, ../shared/data
    python -m benchmarks.peers --limit 2               # smoke run, a few clips
    python -m benchmarks.peers --json docs/results/peers.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from benchmarks.common import CORPORA, CORPUS_TITLES, DEFAULT_DATA, finish, resolve_data
from benchmarks.peer_methods import CLASS_WEIGHT, MAX_WORKERS, METHODS, run_peers


def _uar_row(summaries: dict, overall: dict | None) -> list[str]:
    cells = [f"{overall['uar']:.3f}" if overall else "  -  "]
    for corpus in CORPORA:
        s = summaries.get(corpus)
        cells.append(f"{s['uar']:.3f}" if s else "  -  ")
    return cells


def format_table(result: dict) -> str:
    """Plain-text tables: test (and val) UAR per method and corpus, LOCO, extraction cost."""
    head = ["overall", *(CORPUS_TITLES[c] for c in CORPORA)]
    width = max([len(m) for m in result["methods"]] + [len("reference (DESIGN.md)"), 24])
    lines = [f"Classic peers, split {result['split']}, data {result['data']['root']}"
             + (f", limit {result['data']['limit']} per split/corpus/class" if result["data"]["limit"] else "")]
    per_split = result["data"]["per_split"]
    lines.append("clips: " + "; ".join(f"{s} {sum(c.values())} ({', '.join(f'{CORPUS_TITLES.get(k, k)} {v}' for k, v in c.items())})"
                                       for s, c in per_split.items()))
    if result["data"]["excluded"]:
        lines.append(f"left out (CREMA-D clips with conflicting labels): {', '.join(result['data']['excluded'])}")
    lines.append(f"class_weight: {result['class_weight']}; TESS is split by word (two speakers only)")
    for split in ("test", "val"):
        lines += ["", f"{split.upper()} UAR" + ("" if split == "test" else " (model selection split; not a reported figure)")]
        lines.append(f"{'method':<{width}}  " + "  ".join(f"{h:>7}" for h in head) + "  accuracy  macro-F1")
        for method, entry in result["methods"].items():
            rep = entry[split]
            cells = _uar_row(rep["per_corpus"], rep["overall"])
            lines.append(f"{method:<{width}}  " + "  ".join(f"{c:>7}" for c in cells)
                         + f"  {rep['overall']['accuracy']:>8.3f}  {rep['overall']['macro_f1']:>8.3f}")
            ref = result.get("reference_uar", {}).get(method)
            if split == "test" and ref:
                cells = [f"{ref['overall']:.3f}", *(f"{ref[c]:.3f}" for c in CORPORA)]
                lines.append(f"{'  reference (DESIGN.md)':<{width}}  " + "  ".join(f"{c:>7}" for c in cells))
    if result["loco"]:
        lines += ["", "LEAVE-ONE-CORPUS-OUT test UAR (train: train split of the other corpora; "
                      "test: held-out corpus's test split)"]
        lines.append(f"{'method':<{width}}  " + "  ".join(f"{CORPUS_TITLES[c]:>7}" for c in CORPORA))
        for method, table in result["loco"].items():
            lines.append(f"{method:<{width}}  " + "  ".join(f"{_uar_row(table, None)[1 + i]:>7}"
                                                            for i in range(len(CORPORA))))
    lines += ["", "EXTRACTION (openSMILE functionals, one thread per clip; per hour of audio)"]
    for feature_set, t in result["extraction"].items():
        lines.append(f"{feature_set:<14} {t['n_features']:>5} features  {t['clips']} clips, {t['audio_hours']:.2f} h audio: "
                     f"openSMILE {t['opensmile_cpu_s_per_audio_hour']:.1f} CPU s/h (RTF {t['rtf_opensmile']:.4f}), "
                     f"with decode RTF {t['rtf_with_decode']:.4f}; extracted now {t['extracted_now']}"
                     + (f" in {t['pool_wall_s']:.0f} s wall" if t["extracted_now"] else " (all cached)")
                     + (f"; {len(t['failed'])} failed" if t["failed"] else ""))
    lines += ["", "methods:"] + [f"  {m}: {e['title']} [{e['classifier']}, fit {e['fit_s']:.0f} s on {e['train_clips']} clips]"
                                 for m, e in result["methods"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="openSMILE + SVM peers on split v1 (test UAR per corpus, leave-one-corpus-out).",
        epilog="example: python -m benchmarks.peers --json docs/results/peers.json > docs/results/peers.txt",
    )
    parser.add_argument("--data", default=DEFAULT_DATA, help="corpus root (relative paths: from the repository root)")
    parser.add_argument("--limit", type=int, default=None, help="at most N clips per split, corpus and emotion")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (the first one's reports are kept)")
    parser.add_argument("--method", choices=list(METHODS), action="append", help="run only these (repeatable)")
    parser.add_argument("--class-weight", choices=["balanced", "none"], default=CLASS_WEIGHT,
                        help=f"SVM class weights (default {CLASS_WEIGHT}, as in the reference runs)")
    parser.add_argument("--no-loco", action="store_true", help="skip the leave-one-corpus-out table")
    parser.add_argument("--workers", type=int, default=MAX_WORKERS, help=f"extraction processes (at most {MAX_WORKERS})")
    parser.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    args = parser.parse_args(argv)

    if not resolve_data(args.data).exists():
        print(f"peers: error: {args.data}: no such folder (pass --data)", file=sys.stderr)
        return 1
    result = run_peers(args.data, limit=args.limit, seeds=args.seeds, methods=args.method or tuple(METHODS),
                       loco=not args.no_loco,
                       class_weight=None if args.class_weight == "none" else args.class_weight, workers=args.workers)
    return finish(result, format_table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
