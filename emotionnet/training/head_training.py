"""Train the `whisper` model's head on cached encoder states (encoder_cache.py).

The "stats" head (the default) is a logistic regression on each window's layer
statistics, fitted in one L-BFGS run (`fit_stats_head`). The "attentive" head
trains in a plain loop: batches drawn with the CRNN's sampling weights (a square
root between frequency and balance over corpus x emotion cells), AdamW with a
cosine schedule, and the epoch with the best validation UAR (mean over the
validation corpora) kept. Clean and augmented
copies of a training clip are different windows of one clip; validation reads
clean windows only, and a clip's answer is the mean of its windows'
probabilities, as at inference.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from emotionnet.corpora import Record, split_of
from emotionnet.evaluation.metrics import uar
from emotionnet.inference.results import ScoredWindows
from emotionnet.labels import LABEL_INDEX, LABELS
from emotionnet.models.whisper.head import CACHE_POOL, EmotionHead, StatsHead, layer_statistics
from emotionnet.training import calibration
from emotionnet.training.batches import classes_present, sampling_weights
from emotionnet.training.encoder_cache import StateStore, clip_key
from emotionnet.training.losses import masked_cross_entropy, masked_log_probabilities


@dataclass(frozen=True)
class HeadConfig:
    kind: str = "stats"  # or "attentive" (models/whisper/head.py); stats generalises better (docs/benchmarks.md)
    layers: int = 6  # encoder blocks used (their states plus the blocks' input)
    hidden: int = 256
    attention: int = 128
    frame_pool: int = 8  # encoder frames (20 ms) per frame the head attends over
    center_time: bool = False  # subtract each state's mean over the window (see EmotionHead)
    dropout: float = 0.3
    epochs: int = 8
    steps_per_epoch: int = 250
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    frame_dropout: float = 0.1  # share of a window's frames hidden, so no single moment decides
    seed: int = 0
    l2: float = 0.05  # the "stats" head's L2 penalty on its weighted mean loss
    # The loss over each corpus's classes only (`classes_present`) rather than all six. Off: on
    # corpora left out, masks cost the linear head 0.10 UAR on CREMA-D (the session note of issue 20).
    class_masks: bool = False
    # The "stats" head trained with speaker context as the CRNN recipe draws it (its own_context_p is
    # 1 - this): this share of the loss reads each training window against its speaker's mean
    # standardised statistics (centred), the rest alone. 0: every window alone.
    context_share: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class CachedStates:
    """Every variant's cached windows (float16, memory-mapped: processes share the page cache), by record."""

    def __init__(self, folder, variants: Sequence[str], window_shape: tuple[int, ...], encoder_digest: str,
                 dtype: type = np.float16):
        self.encoder_digest = encoder_digest
        self.shards: dict[str, list[torch.Tensor]] = {}
        self.offsets: dict[str, np.ndarray] = {}
        self.index: dict[str, dict[str, tuple[int, int]]] = {}
        self._keys: dict[str, str] = {}
        self._statistics: dict[str, torch.Tensor] = {}
        for variant in variants:
            arrays, index = StateStore(folder / variant, dtype).load(window_shape)
            offsets = np.cumsum([0, *[len(a) for a in arrays]])
            with warnings.catch_warnings():  # read-only maps: nothing here writes to them
                warnings.simplefilter("ignore", UserWarning)
                self.shards[variant] = [torch.from_numpy(a) for a in arrays]
            self.offsets[variant] = offsets
            self.index[variant] = {key: (int(offsets[shard]) + start, count)
                                   for key, (shard, start, count) in index.items()}

    def _key(self, record: Record, variant: str) -> str:
        base = self._keys.get(record.path)
        if base is None:
            base = self._keys[record.path] = clip_key(record.path, self.encoder_digest, "")
        return base + variant

    def windows(self, record: Record, variant: str) -> list[int]:
        """The rows of the record's windows in `variant`; [] if it is not cached."""
        start, count = self.index[variant].get(self._key(record, variant), (0, 0))
        return list(range(start, start + count))

    def gather(self, variant: str, rows: Sequence[int], states: int | None = None) -> torch.Tensor:
        """(len(rows), states, frames, width) float32: the first `states` of each row's layers (default all)."""
        rows = np.asarray(rows, dtype=np.int64)
        shard_of = np.searchsorted(self.offsets[variant], rows, side="right") - 1
        shards = self.shards[variant]
        out = torch.empty((len(rows), *(shards[0][:1, :states].shape[1:])), dtype=torch.float32)
        for shard in np.unique(shard_of):
            mine = np.flatnonzero(shard_of == shard)
            local = torch.as_tensor(rows[mine] - self.offsets[variant][shard])
            out[torch.as_tensor(mine)] = shards[shard].index_select(0, local)[:, :states].float()
        return out

    def statistics(self, variant: str, rows: Sequence[int], states: int) -> torch.Tensor:
        """(len(rows), states * 2 * width): `layer_statistics` of the rows' first `states` layers.

        Worked out once per variant for all its windows and layers and kept (the first states'
        statistics are the table's first columns), so the folds of a LOCO benchmark or the trials
        of a study each fit in seconds instead of re-reading gigabytes.
        """
        if variant not in self._statistics:
            total = int(self.offsets[variant][-1])
            table = None
            for start in tqdm(range(0, total, 512), desc=f"window statistics ({variant})", mininterval=10,
                              disable=None):
                chunk = layer_statistics(self.gather(variant, range(start, min(total, start + 512))))
                if table is None:
                    table = torch.empty((total, chunk.shape[1]), dtype=torch.float32)
                table[start:start + len(chunk)] = chunk
            self._statistics[variant] = table if table is not None else torch.empty(0, 0)
        table = self._statistics[variant]
        columns = table.shape[1] // self.shards[variant][0].shape[1] * states
        return table[torch.as_tensor(np.asarray(rows, dtype=np.int64)), :columns]


class CachedStatistics(CachedStates):
    """The statistics cache (statistics_cache.py): each row is already a stretch's `layer_statistics`,
    so the "stats" head reads them as they are; a clip's "clean" row is the clip whole."""

    def __init__(self, folder, variants: Sequence[str], n_states: int, width: int, encoder_digest: str):
        super().__init__(folder, variants, (n_states * 2 * width,), encoder_digest, np.float32)
        self.columns_per_state = 2 * width

    def gather(self, variant: str, rows: Sequence[int], states: int | None = None) -> torch.Tensor:
        raise TypeError("the statistics cache holds no frame states: only the stats head trains on it")

    def statistics(self, variant: str, rows: Sequence[int], states: int) -> torch.Tensor:
        rows = np.asarray(rows, dtype=np.int64)
        columns = states * self.columns_per_state
        shard_of = np.searchsorted(self.offsets[variant], rows, side="right") - 1
        out = torch.empty((len(rows), columns), dtype=torch.float32)
        for shard in np.unique(shard_of):
            mine = np.flatnonzero(shard_of == shard)
            local = torch.as_tensor(rows[mine] - self.offsets[variant][shard])
            out[torch.as_tensor(mine)] = self.shards[variant][shard].index_select(0, local)[:, :columns]
        return out


def _frame_dropout(states: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    if p <= 0:
        return states
    keep = (torch.rand(states.shape[0], 1, states.shape[2], 1, generator=g) >= p).float()
    return states * keep


def _classes_in_loss(records: Sequence[Record], config: HeadConfig) -> torch.Tensor:
    if config.class_masks:
        return classes_present(records)
    return torch.ones(len(records), len(LABELS), dtype=torch.bool)


def clip_logits(head: EmotionHead | StatsHead, cache: CachedStates, records: Sequence[Record], layers: int,
                variant: str = "clean", batch: int = 128) -> list[torch.Tensor]:
    """Each record's window logits (windows, classes) from the cache; records not cached are left out."""
    head.eval()
    places, owners = [], []
    for i, record in enumerate(records):
        for place in cache.windows(record, variant):
            places.append(place)
            owners.append(i)
    out: list[list[torch.Tensor]] = [[] for _ in records]
    with torch.inference_mode():
        for s in range(0, len(places), batch):
            rows = places[s:s + batch]
            if isinstance(head, StatsHead):  # the statistics table instead of re-reading the states
                logits = head.classify_statistics(cache.statistics(variant, rows, layers + 1))
            else:
                logits = head(cache.gather(variant, rows, layers + 1))
            for owner, row in zip(owners[s:s + batch], logits):
                out[owner].append(row)
    return [torch.stack(rows) if rows else torch.empty(0, len(LABELS)) for rows in out]


def as_scored(logits: Sequence[torch.Tensor]) -> list[ScoredWindows]:
    """Cached windows' logits as the recognizer's `ScoredWindows` (every window speech: acted clips),
    so calibration and clip answers use the one implementation (training/calibration.py)."""
    return [ScoredWindows(0, [0] * len(x), [True] * len(x), x) for x in logits]


def clip_probabilities(logits: Sequence[torch.Tensor], temperature: float) -> np.ndarray:
    """(clips, classes): the mean of each clip's windows' calibrated probabilities."""
    return calibration.clip_probabilities(as_scored(logits), temperature)


def per_corpus_uar(records: Sequence[Record], probabilities: np.ndarray) -> dict[str, float]:
    groups = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.corpus].append(i)
    y = np.array([LABEL_INDEX[r.emotion] for r in records])
    pred = probabilities.argmax(axis=1)
    return {corpus: uar(y[idx], pred[idx]) for corpus, idx in sorted(groups.items())}


def _validation_uar(head: torch.nn.Module, cache: CachedStates, val: Sequence[Record],
                    layers: int) -> tuple[float, dict[str, float]]:
    """The mean per-corpus UAR of the cached validation clips, each clip alone, and its parts (nan if none)."""
    val = [r for r in val if cache.windows(r, "clean")]
    if not val:
        return float("nan"), {}
    per_corpus = per_corpus_uar(val, clip_probabilities(clip_logits(head, cache, val, layers), 1.0))
    return float(np.mean(list(per_corpus.values()))), per_corpus


def train_head(cache: CachedStates, train: Sequence[Record], val: Sequence[Record], config: HeadConfig,
               train_variants: Sequence[str] = ("clean", "aug1"), width: int = 512,
               progress: Callable[[str], None] | None = None) -> tuple[EmotionHead, dict]:
    """The head with the best mean per-corpus validation UAR, and its training history."""
    if config.kind == "stats":
        return fit_stats_head(cache, train, val, config, train_variants, width)
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    items = [(variant, place, r) for r in train for variant in train_variants for place in cache.windows(r, variant)]
    if not items:
        raise ValueError("no cached encoder states for the training records (run the encoder cache first)")
    item_records = [r for _, _, r in items]
    weights = sampling_weights(item_records)
    labels = torch.tensor([LABEL_INDEX[r.emotion] for r in item_records])
    present = _classes_in_loss(item_records, config)
    n_states = config.layers + 1  # the blocks' input and each used block's output
    head = EmotionHead(config.layers + 1, width, config.hidden, config.attention, config.dropout, len(LABELS),
                       config.frame_pool // CACHE_POOL, config.center_time)
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * config.steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    best, history = (-1.0, None, 0), []
    for epoch in range(config.epochs):
        head.train()
        running = 0.0
        for _ in range(config.steps_per_epoch):
            chosen = torch.multinomial(weights, config.batch_size, replacement=True, generator=g).tolist()
            by_variant = defaultdict(list)
            for i in chosen:
                by_variant[items[i][0]].append(i)
            order = [i for v in by_variant.values() for i in v]
            x = torch.cat([cache.gather(v, [items[i][1] for i in idx], n_states) for v, idx in by_variant.items()])
            x = _frame_dropout(x, config.frame_dropout, g)
            loss = masked_cross_entropy(head(x), labels[order], present[order], config.label_smoothing)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            running += float(loss.detach())
        score, per_corpus = _validation_uar(head, cache, val, config.layers)
        history.append({"epoch": epoch + 1, "loss": running / config.steps_per_epoch, "val_uar": score,
                        "val_per_corpus": per_corpus})
        if progress:
            progress(f"epoch {epoch + 1}: loss {running / config.steps_per_epoch:.3f} val UAR {score:.3f}")
        if score > best[0]:
            best = (score, copy.deepcopy(head.state_dict()), epoch + 1)
    head.load_state_dict(best[1])
    return head.eval(), {"history": history, "best_epoch": best[2], "val_uar": best[0]}


def fit_stats_head(cache: CachedStates, train: Sequence[Record], val: Sequence[Record], config: HeadConfig,
                   train_variants: Sequence[str] = ("clean", "aug1"), width: int = 512) -> tuple[StatsHead, dict]:
    """The "stats" head: multinomial logistic regression on every training window's `layer_statistics`.

    Each (corpus, emotion) cell weighs the same in the loss (UAR's own balance; a full-batch fit
    sees every window at every step, so the square-root compromise of `sampling_weights`, which
    guards against memorising SAVEE through repetition, is the L2 penalty's job here). L-BFGS on
    the whole set is deterministic and takes seconds.
    """
    n_states = config.layers + 1
    blocks, item_records = [], []
    for variant in train_variants:
        windows = [(place, r) for r in train for place in cache.windows(r, variant)]
        blocks.append(cache.statistics(variant, [place for place, _ in windows], n_states))
        item_records += [r for _, r in windows]
    if not item_records:
        raise ValueError("no cached encoder states for the training records (run the encoder cache first)")
    x = torch.cat(blocks)
    weights = sampling_weights(item_records, balance=1.0).float()
    weights /= weights.sum()
    labels = torch.tensor([LABEL_INDEX[r.emotion] for r in item_records])
    present = _classes_in_loss(item_records, config)
    head = StatsHead(n_states, width, len(LABELS))
    head.feature_mean.copy_(x.mean(dim=0))
    head.feature_scale.copy_(x.std(dim=0).clamp_min(1e-4))
    x = (x - head.feature_mean) / head.feature_scale
    if config.context_share > 0:  # each window once more, read against its speaker's mean
        x = torch.cat([x, x - speaker_means(x, item_records)])
        weights = torch.cat([(1 - config.context_share) * weights, config.context_share * weights])
        labels, present = torch.cat([labels, labels]), torch.cat([present, present])
    weight = torch.zeros(x.shape[1], len(LABELS), requires_grad=True)
    bias = torch.zeros(len(LABELS), requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=300, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        log_probs = masked_log_probabilities(x @ weight + bias, present)
        loss = -(weights * log_probs.gather(1, labels[:, None])[:, 0]).sum() + config.l2 * weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    loss = float(closure().detach())
    with torch.no_grad():
        head.classify.weight.copy_(weight.T)
        head.classify.bias.copy_(bias)
    score, per_corpus = _validation_uar(head.eval(), cache, val, config.layers)
    history = [{"epoch": 1, "loss": loss, "val_uar": score, "val_per_corpus": per_corpus}]
    return head, {"history": history, "best_epoch": 1, "val_uar": score}


def speaker_means(x: torch.Tensor, records: Sequence[Record]) -> torch.Tensor:
    """(rows, features): each row's speaker's mean of `x` (over all that speaker's rows)."""
    groups = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.group].append(i)
    means = torch.empty_like(x)
    for rows in groups.values():
        index = torch.as_tensor(rows)
        means[index] = x[index].mean(dim=0)
    return means


def held_out_validation_uar(cache: CachedStates, records: Sequence[Record], held_out: str, config: HeadConfig,
                            train_variants: Sequence[str] = ("clean", "aug1")) -> float:
    """One LOCO fold judged on validation clips only: the head trained on the other corpora's train
    splits (selected on their val splits), its UAR on `held_out`'s validation clips, each clip alone."""
    def part(split: str, inside: bool) -> list[Record]:
        return [r for r in records if split_of(r) == split and (r.corpus == held_out) != inside
                and cache.windows(r, "clean")]

    head, _ = train_head(cache, part("train", True), part("val", True), config, train_variants)
    held_out_val = part("val", False)
    if not held_out_val:
        raise ValueError(f"{held_out} has no cached validation clips")
    probabilities = clip_probabilities(clip_logits(head, cache, held_out_val, config.layers), 1.0)
    return per_corpus_uar(held_out_val, probabilities)[held_out]
