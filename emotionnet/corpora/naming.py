"""File-name parsers, one per corpus.

Each `parse_*` looks at one audio path and returns a `Record`, or None when
the name is not that corpus's (or is a RAVDESS song). Records may carry an
out-of-set emotion (calm, surprise): the caller counts those and leaves them
out, never relabels them. Layouts differ between releases and
redistributions, so only the file name and its parent folder are read.
"""

from __future__ import annotations

import re
from pathlib import Path

from emotionnet.corpora.records import Record

CREMA_D = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
CREMA_D_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
# Byte-identical clips with two different labels: at least one label is wrong.
CREMA_D_CONFLICTING = frozenset({
    "1006_TIE_HAP_XX", "1006_TIE_NEU_XX",
    "1013_WSI_DIS_XX", "1013_WSI_SAD_XX",
    "1017_IWW_ANG_XX", "1017_IWW_FEA_XX",
})

RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}

TESS = re.compile(r"^([A-Za-z]+)_([a-z]+)_([A-Za-z_]+)$", re.IGNORECASE)
TESS_FOLDER = re.compile(r"^(OAF|YAF)_", re.IGNORECASE)
TESS_EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
                 "neutral": "neutral", "sad": "sad", "ps": "surprise",
                 "pleasant_surprise": "surprise", "pleasant_surprised": "surprise"}

SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
SAVEE = re.compile(r"^(?:(DC|JE|JK|KL)_)?(a|d|f|h|n|sa|su)(\d\d)$")
SAVEE_EMOTIONS = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy",
                  "n": "neutral", "sa": "sad", "su": "surprise"}

NEMO = re.compile(r"^([A-Z]{2}\d)_([a-z]+)_(\d+)$")
NEMO_EMOTIONS = {"anger": "angry", "fear": "fear", "happiness": "happy",
                 "neutral": "neutral", "sadness": "sad", "surprised": "surprise"}

# The letter and the folder number both name the emotion (`a5` = 05Angry); one release file is
# spelt with a capital letter (`S4-04-02-01-29`). The gender field is unreliable: speaker is BB alone.
ASED = re.compile(r"^([nfhsa])([1-5])-(\d\d)-(\d\d)-(\d\d)-(\d\d)$", re.IGNORECASE)
ASED_EMOTIONS = {"n1": "neutral", "f2": "fear", "h3": "happy", "s4": "sad", "a5": "angry"}

TUREV = re.compile(r"^(\d{4})_(kz|sk|mt|hl)_(.+)$")
# TurEV-DB has no neutral class: its only non-emotional class, calm (sk), is read as neutral.
TUREV_EMOTIONS = {"kz": "angry", "sk": "neutral", "mt": "happy", "hl": "sad"}

# BanglaSER's own names have RAVDESS's seven two-digit fields with other emotion codes; the
# shared copy puts `BanglaSER_` before them, and only names with that prefix are read as BanglaSER.
BANGLASER = re.compile(r"^BanglaSER_(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$", re.IGNORECASE)
BANGLASER_EMOTIONS = {"01": "happy", "02": "sad", "03": "angry", "04": "surprise", "05": "neutral"}


def parse_crema_d(path: Path) -> Record | None:
    m = CREMA_D.match(path.stem)
    if not m or m.group(3) not in CREMA_D_EMOTIONS:
        return None
    speaker, sentence, code, level = m.groups()
    return Record(str(path), "crema-d", speaker, CREMA_D_EMOTIONS[code], sentence, level)


def parse_ravdess(path: Path) -> Record | None:
    m = RAVDESS.match(path.stem)
    if not m:
        return None
    _modality, channel, code, intensity, statement, _rep, actor = m.groups()
    if channel != "01":
        return None  # RAVDESS song files are not speech
    emotion = RAVDESS_EMOTIONS.get(code)
    if emotion is None:
        return None
    return Record(str(path), "ravdess", actor, emotion, statement, {"01": "normal", "02": "strong"}.get(intensity))


def parse_tess(path: Path) -> Record | None:
    folder = TESS_FOLDER.match(path.parent.name)
    m = TESS.match(path.stem)
    if not folder or not m:
        return None
    _, word, code = m.groups()
    emotion = TESS_EMOTIONS.get(code.lower())
    if emotion is None:
        return None
    # One file is named OA_bite_neutral: the folder names the speaker reliably.
    return Record(str(path), "tess", folder.group(1).upper(), emotion, word.lower())


def parse_savee(path: Path) -> Record | None:
    m = SAVEE.match(path.stem)
    if not m:
        return None
    speaker = m.group(1) or (path.parent.name if path.parent.name in SAVEE_SPEAKERS else None)
    if speaker is None:
        return None
    return Record(str(path), "savee", speaker, SAVEE_EMOTIONS[m.group(2)], f"{m.group(2)}{m.group(3)}")


def parse_nemo(path: Path) -> Record | None:
    m = NEMO.match(path.stem)
    if not m or m.group(2) not in NEMO_EMOTIONS:
        return None
    speaker, code, number = m.groups()
    return Record(str(path), "nemo", speaker, NEMO_EMOTIONS[code], number)


def parse_ased(path: Path) -> Record | None:
    m = ASED.match(path.stem)
    if not m:
        return None
    letter, folder, sentence, _repetition, _gender, speaker = m.groups()
    emotion = ASED_EMOTIONS.get(letter.lower() + folder)
    if emotion is None:
        return None
    return Record(str(path), "ased", speaker, emotion, sentence)


def parse_turev(path: Path) -> Record | None:
    m = TUREV.match(path.stem)
    if not m:
        return None
    speaker, code, word = m.groups()
    return Record(str(path), "turev", speaker, TUREV_EMOTIONS[code], word.lower())


def parse_banglaser(path: Path) -> Record | None:
    m = BANGLASER.match(path.stem)
    if not m:
        return None
    _mode, _statement_type, code, intensity, sentence, _repetition, actor = m.groups()
    emotion = BANGLASER_EMOTIONS.get(code)
    if emotion is None:
        return None
    return Record(str(path), "banglaser", actor, emotion, sentence, {"01": "normal", "02": "strong"}.get(intensity))


PARSERS = {
    "crema-d": parse_crema_d,
    "ravdess": parse_ravdess,
    "tess": parse_tess,
    "savee": parse_savee,
    "nemo": parse_nemo,
    "ased": parse_ased,
    "turev": parse_turev,
    "banglaser": parse_banglaser,
}
