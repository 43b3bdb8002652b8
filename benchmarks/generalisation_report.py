"""The generalisation benchmark's report: its Markdown, its verdicts on DESIGN.md's targets,
and the reliability diagram, from the result `python -m benchmarks.generalisation` computes
(the running is `generalisation.py`; this file only reads a result).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import peer_methods as peers
from benchmarks.common import ALL_CORPORA as CORPORA
from benchmarks.common import CORPUS_TITLES as TITLES
from emotionnet.evaluation.metrics import calibration_error
from emotionnet.training.calibration import SCALES

TARGETS = {"test_uar_v1": 0.72, "test_uar_new": 0.70, "loco_mean": 0.55, "collapse": 0.30,
           "channel_drop": 0.05, "ece_test": 0.05, "ece_loco": 0.10}


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def format_markdown(result: dict) -> str:
    lines = [f"# Generalisation of `{result['model_file']}` (split {result['split']})", "",
             f"sha256 `{result['sha256'][:16]}…`, normalisation `{result['normalisation']}`, "
             f"temperature {result['temperature']:.3f}; {result['machine']}", ""]
    corpora = [c for c in CORPORA if c in result["data"]["clips"]]
    header = f"| | all {len(corpora)} | v1 four | " + " | ".join(TITLES[c] for c in corpora) + " |"
    rule = "|---" * (len(corpora) + 3) + "|"
    scored = result.get("scored_split", "test")  # in-domain and channels; val when choosing between models
    if "in_domain" in result:
        lines += [f"## {'Validation' if scored == 'val' else 'Test'} UAR, split {result['split']}", "", header, rule]
        names = {"alone": "each clip alone", "random5": "with 5 random clips of the speaker",
                 "neutral": "with the speaker's neutral clips"}
        for kind, rows in result["in_domain"].items():
            lines.append(f"| {names[kind]} | {_f(rows['overall']['uar'])} | {_f((rows['overall_v1'] or {}).get('uar'))} | "
                         + " | ".join(_f(rows["per_corpus"].get(c, {}).get("uar")) for c in corpora) + " |")
        alone = result["in_domain"]["alone"]
        for key, title in (("collapse", "collapse, alone"), ("ece", "ECE, alone"), ("brier", "Brier, alone")):
            lines.append(f"| {title} | {_f(alone['overall'][key])} | {_f((alone['overall_v1'] or {}).get(key))} | "
                         + " | ".join(_f(alone["per_corpus"].get(c, {}).get(key)) for c in corpora) + " |")
        lines.append("")
    if "peers_in_domain" in result:
        lines += ["## The peers on split v2 (trained on every corpus's train split, test UAR)", "",
                  "| | all seven | " + " | ".join(TITLES[c] for c in CORPORA) + " |", "|---" * (len(CORPORA) + 2) + "|"]
        for method, rows in result["peers_in_domain"].items():
            lines.append(f"| {peers.METHODS[method]['title']} | {_f(rows['overall']['uar'])} | "
                         + " | ".join(_f(rows["per_corpus"].get(c, {}).get("uar")) for c in CORPORA) + " |")
        lines.append("")
    if "loco" in result or "peers_loco" in result:
        lines += ["## Leave-one-corpus-out, test UAR of the held-out corpus (each clip alone)", "",
                  "| | mean | " + " | ".join(TITLES[c] for c in CORPORA) + " |", "|---" * (len(CORPORA) + 2) + "|"]
        rows = []
        if "loco" in result:
            loco = result["loco"]
            budget = result.get("loco_budget", {})
            reduced = budget.get("epochs") or budget.get("steps_per_epoch")
            schedule = (f"{budget.get('epochs') or 'the recipe’s'} epochs at most of "
                        f"{budget.get('steps_per_epoch') or 'a pass of the clips in'} steps" if reduced
                        else "its full schedule")
            rows.append((f"EmotionNet default recipe ({schedule})", loco, "uar"))
            rows.append(("EmotionNet: collapse", loco, "collapse"))
            rows.append(("EmotionNet: ECE", loco, "ece"))
            unseen = result.get("unseen_corpus_calibration") or {}
            if unseen:
                rows.append((f"EmotionNet: ECE at the unseen-corpus temperature (x{unseen['scale']:.2f})",
                             {c: {"ece": e} for c, e in unseen["held_out_test_ece"].items()}, "ece"))
            for kind, title in (("random5", "with 5 random clips of the speaker"),
                                ("neutral", "with the speaker's neutral clips")):
                with_context = {c: v["contexts"][kind] for c, v in loco.items() if kind in v.get("contexts", {})}
                if with_context:
                    rows.append((f"EmotionNet, {title}", with_context, "uar"))
            rows.append(("EmotionNet: validation UAR of the six corpora (selection)", loco, "val_uar"))
        for method, table_ in result.get("peers_loco", {}).items():
            rows.append((peers.METHODS[method]["title"], table_, "uar"))
        for title, table_, key in rows:
            values = [table_.get(c, {}).get(key) for c in CORPORA]
            present = [v for v in values if v is not None]
            mean = float(np.mean(present)) if present else None
            lines.append(f"| {title} | {_f(mean)} | " + " | ".join(_f(v) for v in values) + " |")
        lines.append("")
    unseen = result.get("unseen_corpus_calibration")
    if unseen:
        lines += ["## Temperature for a corpus the model never heard (chosen on validation clips only)", "",
                  f"Scale {unseen['scale']:.2f} times the validation temperature: mean ECE "
                  f"{unseen['seen_val_ece']:.3f} on the six learnt corpora's validation clips and "
                  f"{unseen['held_out_val_ece']:.3f} on the held-out corpus's (at scale 1: "
                  f"{_scale_one(result, 'seen_val'):.3f} and {_scale_one(result, 'held_out_val'):.3f}). "
                  "The log-loss-optimal scale on each held-out corpus's validation clips: "
                  + ", ".join(f"{TITLES[c]} {v:.2f}" for c, v in unseen["held_out_val_best_scale"].items()) + ".", ""]
    if "channels" in result:
        ch = result["channels"]
        lines += [f"## Channel suite ({ch['clips']} {scored} clips, at most {ch['per_class']} per corpus and emotion)", "",
                  "| channel | UAR | drop | collapse | ECE |", "|---|---|---|---|---|",
                  f"| clean | {_f(ch['clean']['overall']['uar'])} | | {_f(ch['clean']['overall']['collapse'])} | "
                  f"{_f(ch['clean']['overall']['ece'])} |"]
        for name, row in ch["channels"].items():
            lines.append(f"| {name} | {_f(row['overall']['uar'])} | {row['drop']:+.3f} | "
                         f"{_f(row['overall']['collapse'])} | {_f(row['overall']['ece'])} |")
        lines.append("")
    if "peers_channels" in result:
        tables = {"EmotionNet": result["channels"]} if "channels" in result else {}
        tables.update({peers.METHODS[m]["title"].split(" (")[0] + (", per speaker" if "speaker" in m else ""): t
                       for m, t in result["peers_channels"].items()})
        names = list(next(iter(tables.values()))["channels"])
        lines += ["## Channel suite beside the peers (UAR clean, then the drop per channel)", "",
                  "| | clean | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for title, t in tables.items():
            lines.append(f"| {title} | {_f(t['clean']['overall']['uar'])} | "
                         + " | ".join(f"{t['channels'][n]['drop']:+.3f}" for n in names) + " |")
        lines.append("")
    voices = result.get("voices")
    if voices and "counts" in voices:
        lines += [f"## Synthetic voices ({len(voices['answers'])} espeak-ng voices x {len(next(iter(voices['answers'].values())))} neutral "
                  "sentences)", "", "| voice | answers |", "|---|---|"]
        lines += [f"| {voice} | {', '.join(answers)} |" for voice, answers in voices["answers"].items()]
        lines += ["", f"Answers: {voices['counts']}; most common {voices['collapse']:.0%} of them, "
                  f"angry {voices['angry_share']:.0%}.", ""]
    lines += ["## Targets (DESIGN.md)", ""] + [f"- {v}" for v in verdicts(result)]
    lines += ["", f"Wall time {result['wall_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def _scale_one(result: dict, part: str) -> float:
    """Mean ECE over the LOCO folds at the models' validation (in-domain) temperature."""
    one = int(np.argmin(np.abs(SCALES - 1.0)))
    return float(np.mean([v["calibration"][part]["ece"][one] for v in result["loco"].values()]))


def verdicts(result: dict) -> list[str]:
    out = []
    alone = result.get("in_domain", {}).get("alone")
    scored = result.get("scored_split", "test")  # the targets are on test; val is read to choose a model
    if alone:
        pc = alone["per_corpus"]
        if alone["overall_v1"]:
            v1 = alone["overall_v1"]["uar"]
            out.append(f"split v1 corpora {scored} UAR alone {v1:.3f} (target >= 0.72): {'met' if v1 >= 0.72 else 'MISSED'}")
        for c, target in (("crema-d", 0.65), ("ravdess", 0.70), ("tess", 0.98), ("savee", 0.50)):
            if c in pc:
                ok = pc[c]["uar"] >= target
                out.append(f"{TITLES[c]} {scored} UAR alone {pc[c]['uar']:.3f} (target >= {target:.2f}): "
                           f"{'met' if ok else 'MISSED'}")
        for c in ("nemo", "ased", "turev"):
            if c in pc:
                ok = pc[c]["uar"] >= TARGETS["test_uar_new"]
                out.append(f"{TITLES[c]} {scored} UAR alone {pc[c]['uar']:.3f} (target >= 0.70): {'met' if ok else 'MISSED'}")
        ece = alone["overall"]["ece"]
        out.append(f"ECE on {scored} {ece:.3f} (target <= 0.05): {'met' if ece <= TARGETS['ece_test'] else 'MISSED'}")
    loco = result.get("loco")
    if loco:
        mean = float(np.mean([v["uar"] for v in loco.values()]))
        out.append(f"LOCO mean UAR {mean:.3f} (target >= 0.55): {'met' if mean >= TARGETS['loco_mean'] else 'MISSED'}")
        worst = max(v["collapse"] for v in loco.values())
        out.append(f"LOCO worst collapse {worst:.3f} (target <= 0.30): {'met' if worst <= TARGETS['collapse'] else 'MISSED'}")
        worst_ece = max(v["ece"] for v in loco.values())
        pooled = pooled_reliability([v["reliability"] for v in loco.values()])
        if pooled:
            out.append(f"LOCO ECE of the held-out corpora pooled {calibration_error(pooled):.3f}")
        unseen = result.get("unseen_corpus_calibration")
        if unseen:
            worst_scaled = max(unseen["held_out_test_ece"].values())
            out.append(f"LOCO worst ECE at the unseen-corpus temperature (x{unseen['scale']:.2f}) {worst_scaled:.3f} "
                       f"(target <= 0.10): {'met' if worst_scaled <= TARGETS['ece_loco'] else 'MISSED'}")
        out.append(f"LOCO worst ECE {worst_ece:.3f} (target <= 0.10): "
                   f"{'met' if worst_ece <= TARGETS['ece_loco'] else 'MISSED'}")
        peer = result.get("peers_loco", {}).get("compare_linear_svm_speaker")
        if peer:
            below = [TITLES[c] for c in loco if c in peer and loco[c]["uar"] <= peer[c]["uar"]]
            out.append("LOCO above the per-speaker ComParE SVM on every corpus: "
                       + ("met" if not below else f"MISSED on {', '.join(below)}"))
    channels = result.get("channels")
    if channels:
        worst_name, worst = max(((n, r["drop"]) for n, r in channels["channels"].items()), key=lambda x: x[1])
        out.append(f"channel suite worst drop {worst:+.3f} ({worst_name}; target <= 0.05): "
                   f"{'met' if worst <= TARGETS['channel_drop'] else 'MISSED'}")
    return out


def pooled_reliability(tables: Sequence[dict]) -> dict | None:
    """One reliability table from several over the same bins (bin means weighted by their counts)."""
    if not tables:
        return None
    counts = np.sum([t["count"] for t in tables], axis=0)
    pooled = {"edges": tables[0]["edges"], "count": counts.tolist()}
    for key in ("confidence", "accuracy"):
        weighted = np.sum([np.asarray(t[key]) * np.asarray(t["count"]) for t in tables], axis=0)
        pooled[key] = (weighted / np.maximum(counts, 1)).tolist()
    return pooled


def plot_reliability(result: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    curves = [("test, each clip alone", result.get("in_domain", {}).get("alone", {}).get("reliability")),
              ("LOCO models on their held-out corpora, pooled", pooled_reliability(
                  [v["reliability"] for v in result.get("loco", {}).values()]))]
    for label, data in curves:
        if not data:
            continue
        count = np.asarray(data["count"])
        used = count > 0
        ax.plot(np.asarray(data["confidence"])[used], np.asarray(data["accuracy"])[used], marker="o", label=label)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Reliability (15 bins)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
