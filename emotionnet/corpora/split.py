"""Split protocol v3: speaker-independent, fixed lists (see DESIGN.md).

v3 is v2 plus BanglaSER; v2 is v1, unchanged for CREMA-D, RAVDESS, TESS and SAVEE, plus nEMO,
ASED and TurEV-DB. An older model file names the protocol it was trained on.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from emotionnet.corpora.records import Record

SPLIT_NAME = "v3"
# The corpora of each protocol version. A later version only adds corpora: the lists of the
# earlier ones never changed, so scoring version vN is scoring its corpora (a custom manifest's
# data is in every version).
PROTOCOL_CORPORA = {
    "v1": ("crema-d", "ravdess", "tess", "savee"),
    "v2": ("crema-d", "ravdess", "tess", "savee", "nemo", "ased", "turev"),
    "v3": ("crema-d", "ravdess", "tess", "savee", "nemo", "ased", "turev", "banglaser"),
}

# The 200 TESS carrier words, sorted: TESS has two speakers only, so it is split by word.
TESS_WORDS = tuple("""
back bar base bath bean beg bite boat bone book bought burn cab calm came cause chain
chair chalk chat check cheek chief choice cool dab date dead death deep dime dip ditch
dodge dog doll door fail fall far fat fit five food gap gas gaze germ get gin goal good
goose gun half hall hash hate have haze hire hit hole home hurl hush jail jar join judge
jug juice keen keep keg kick kill king kite knock late laud lean learn lease lid life
limb live loaf long lore lose lot love luck make match merge mess met mill mob mode mood
moon mop mouse nag name near neat nice note numb pad page pain pass pearl peg perch phone
pick pike pole pool puff rag raid rain raise rat reach read red ring ripe road room rose
rot rough rush said sail search seize sell shack shall shawl sheep shirt should shout
size soap soup sour south sub such sure take talk tape team tell thin third thought
thumb time tip tire ton tool tough turn vine voice void vote wag walk wash week wheat
when which whip white wife wire witch yearn yes young youth
""".split())
_TESS_INDEX = {word: i for i, word in enumerate(TESS_WORDS)}

RAVDESS_TEST = {3, 8, 13, 18, 21, 24}
RAVDESS_VAL = {6, 11}
NEMO_SPLIT = {"EB0": "test", "TP0": "test", "KS0": "val"}
TUREV_SPLIT = {"1358": "test", "1984": "val"}
BANGLASER_TEST = {5, 10, 15, 20, 25, 30}
BANGLASER_VAL = {3, 8, 23, 28}


def _stable_bucket(key: str) -> int:
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 10


def _speaker_number(record: Record) -> int:
    try:
        return int(record.speaker)
    except ValueError:
        raise ValueError(f"{record.path}: speaker {record.speaker!r} of corpus {record.corpus} is not a number "
                         "(its split lists name speakers by number)") from None


def split_of(record: Record) -> str:
    """`train`, `val` or `test` for one record, by the current protocol (SPLIT_NAME)."""
    if record.split:
        return record.split
    if record.corpus == "crema-d":
        speaker = _speaker_number(record)
        return "test" if speaker % 5 == 0 else "val" if speaker % 10 == 3 else "train"
    if record.corpus == "ravdess":
        actor = _speaker_number(record)
        return "test" if actor in RAVDESS_TEST else "val" if actor in RAVDESS_VAL else "train"
    if record.corpus == "tess":
        index = _TESS_INDEX.get(record.sentence or "")
        if index is None:  # a word outside the release: hash it like custom data
            bucket = _stable_bucket(f"tess-word:{record.sentence}")
            return "test" if bucket == 0 else "val" if bucket == 1 else "train"
        return "test" if index % 5 == 4 else "val" if index % 10 == 2 else "train"
    if record.corpus == "savee":
        return {"JK": "test", "DC": "val"}.get(record.speaker, "train")
    if record.corpus == "nemo":
        return NEMO_SPLIT.get(record.speaker, "train")
    if record.corpus == "ased":
        speaker = int(record.speaker)
        return "test" if speaker % 5 == 0 else "val" if speaker % 10 == 3 else "train"
    if record.corpus == "turev":
        return TUREV_SPLIT.get(record.speaker, "train")
    if record.corpus == "banglaser":
        actor = _speaker_number(record)
        return "test" if actor in BANGLASER_TEST else "val" if actor in BANGLASER_VAL else "train"
    bucket = _stable_bucket(record.group)
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def _grouping(record: Record) -> str:
    return f"tess-word:{record.sentence}" if record.corpus == "tess" else record.group


def check_split(records: list[Record]) -> None:
    """Refuse a split where a speaker (TESS: a word) is on two sides."""
    sides: dict[str, set[str]] = defaultdict(set)
    for record in records:
        sides[_grouping(record)].add(split_of(record))
    leaks = sorted(group for group, found in sides.items() if len(found) > 1)
    if leaks:
        raise ValueError(f"split is not speaker-independent: {', '.join(leaks[:5])} on several sides")


def select(records: list[Record], split: str, protocol: str = SPLIT_NAME) -> list[Record]:
    """The records of one split (`all` keeps every record) of protocol version `protocol` (its
    corpora, see PROTOCOL_CORPORA), after checking the split."""
    if protocol not in PROTOCOL_CORPORA:
        raise ValueError(f"unknown split protocol {protocol!r}; choose {', '.join(PROTOCOL_CORPORA)}")
    check_split(records)
    known = {corpus for corpora in PROTOCOL_CORPORA.values() for corpus in corpora}
    records = [r for r in records if r.corpus in PROTOCOL_CORPORA[protocol] or r.corpus not in known]
    if split == "all":
        return list(records)
    return [r for r in records if split_of(r) == split]
