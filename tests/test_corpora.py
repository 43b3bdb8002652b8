"""Corpus parsers on generated files in the official and the redistributed layouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import soundfile
from conftest import voiced, write_wav

from emotionnet.corpora import Collection, Record, audio_files, find_records, read_manifest
from emotionnet.corpora.naming import CREMA_D_CONFLICTING

CLIP = voiced(0.5)
TESS_NESTED = "TESS Toronto emotional speech set data"


def make(root: Path, relative: str, seed: int = 0) -> Path:
    """A tiny clip at `root/relative`, in the format its extension names."""
    path = root / relative
    suffix = path.suffix.lower()
    audio = voiced(0.5, seed=seed) if seed else CLIP
    if suffix == ".opus":
        if "OPUS" not in soundfile.available_subtypes("OGG"):
            return write_wav(path.with_suffix(".wav"), audio)
        return write_wav(path, audio, format="OGG", subtype="OPUS")
    if suffix == ".flac":
        return write_wav(path, audio, format="FLAC")
    return write_wav(path, audio)


def by_stem(collection: Collection) -> dict[str, Record]:
    return {Path(r.path).stem: r for r in collection.records}


# CREMA-D

def test_crema_d_layouts(tmp_path):
    make(tmp_path, "CREMA-D/1001_DFA_ANG_XX.wav")  # flat, as in ../shared/data
    make(tmp_path, "CREMA-D/1001_IEO_HAP_HI.opus")
    make(tmp_path, "AudioWAV/1002_TIE_SAD_LO.wav")  # the official release
    make(tmp_path, "Crema/1003_WSI_FEA_MD.flac")  # Kaggle
    make(tmp_path, "Crema/1004_ITS_DIS_XX.wav")
    make(tmp_path, "Crema/1004_ITS_NEU_XX.wav")
    found = find_records([tmp_path])
    records = by_stem(found)
    assert len(found.records) == 6
    assert records["1001_DFA_ANG_XX"] == Record(
        str(tmp_path / "CREMA-D/1001_DFA_ANG_XX.wav"), "crema-d", "1001", "angry", "DFA", "XX")
    assert (records["1001_IEO_HAP_HI"].emotion, records["1001_IEO_HAP_HI"].intensity) == ("happy", "HI")
    assert (records["1002_TIE_SAD_LO"].speaker, records["1002_TIE_SAD_LO"].sentence) == ("1002", "TIE")
    assert records["1003_WSI_FEA_MD"].emotion == "fear"
    assert records["1004_ITS_DIS_XX"].emotion == "disgust"
    assert records["1004_ITS_NEU_XX"].emotion == "neutral"
    assert {r.corpus for r in found.records} == {"crema-d"}
    assert not found.skipped and not found.excluded and found.duplicates == 0


def test_crema_d_conflicting_pairs_excluded(tmp_path):
    for stem in sorted(CREMA_D_CONFLICTING):
        make(tmp_path, f"AudioWAV/{stem}.wav")
    make(tmp_path, "AudioWAV/1006_TIE_ANG_XX.wav")  # same speaker and sentence, not in a pair
    found = find_records([tmp_path])
    assert [Path(r.path).stem for r in found.records] == ["1006_TIE_ANG_XX"]
    assert sorted(Path(p).stem for p in found.excluded) == sorted(CREMA_D_CONFLICTING)
    assert len(found.excluded) == 6
    assert not found.skipped


def test_crema_d_names_that_are_not_crema_d(tmp_path):
    make(tmp_path, "x/1001_DFA_XYZ_XX.wav")  # unknown emotion code
    make(tmp_path, "x/101_DFA_ANG_XX.wav")  # three-digit speaker
    make(tmp_path, "x/1001_DFA_ANG_XX_copy.wav")
    assert find_records([tmp_path]).records == []


# RAVDESS

def test_ravdess_layouts_and_out_of_set(tmp_path):
    make(tmp_path, "RAVDESS/Actor_01/03-01-05-02-01-01-01.wav")  # angry, strong
    make(tmp_path, "RAVDESS/Actor_01/03-01-01-01-02-02-01.opus")  # neutral
    make(tmp_path, "RAVDESS/Actor_01/03-01-02-01-01-01-01.wav")  # calm: out
    make(tmp_path, "RAVDESS/Actor_01/03-01-08-02-01-01-01.wav")  # surprised: out
    make(tmp_path, "RAVDESS/Actor_01/03-02-05-01-01-01-01.wav")  # song: not speech
    kaggle = "Ravdess/audio_speech_actors_01-24/Actor_24"
    make(tmp_path, f"{kaggle}/03-01-06-01-02-01-24.wav")  # fearful
    make(tmp_path, f"{kaggle}/03-01-07-02-01-02-24.wav")  # disgust
    make(tmp_path, f"{kaggle}/03-01-03-01-01-01-24.wav")  # happy
    make(tmp_path, f"{kaggle}/03-01-04-01-01-01-24.wav")  # sad
    make(tmp_path, f"{kaggle}/03-01-02-02-01-01-24.wav")  # calm: out
    make(tmp_path, f"{kaggle}/03-02-03-01-01-01-24.wav")  # song: not speech
    found = find_records([tmp_path])
    records = by_stem(found)
    assert len(found.records) == 6
    angry = records["03-01-05-02-01-01-01"]
    assert (angry.corpus, angry.speaker, angry.emotion, angry.sentence, angry.intensity) == (
        "ravdess", "01", "angry", "01", "strong")
    neutral = records["03-01-01-01-02-02-01"]
    assert (neutral.emotion, neutral.sentence, neutral.intensity) == ("neutral", "02", "normal")
    assert records["03-01-06-01-02-01-24"].emotion == "fear"
    assert records["03-01-07-02-01-02-24"].emotion == "disgust"
    assert records["03-01-03-01-01-01-24"].emotion == "happy"
    assert records["03-01-04-01-01-01-24"].speaker == "24"
    # Calm and surprised are counted, never relabelled; songs are not speech at all.
    assert found.skipped == {"calm": 2, "surprise": 1}
    assert not any(r.emotion in ("calm", "surprise") for r in found.records)
    assert not any("-02-" == Path(r.path).stem[2:6] for r in found.records)
    assert found.duplicates == 0


# TESS

def test_tess_layout_case_and_odd_names(tmp_path):
    make(tmp_path, "TESS/OAF_angry/OAF_back_angry.wav")
    make(tmp_path, "TESS/OAF_Fear/OAF_food_fear.opus")
    make(tmp_path, "TESS/OAF_Sad/OAF_bath_sad.wav")
    make(tmp_path, "TESS/OAF_neutral/OA_bite_neutral.wav")
    make(tmp_path, "TESS/OAF_Pleasant_surprise/OAF_back_ps.wav")
    make(tmp_path, "TESS/YAF_pleasant_surprised/YAF_bar_ps.wav")
    make(tmp_path, "TESS/YAF_disgust/YAF_germ_disgust.wav")
    make(tmp_path, "TESS/YAF_happy/YAF_youth_happy.flac")
    found = find_records([tmp_path / "TESS"])
    records = by_stem(found)
    assert len(found.records) == 6
    back = records["OAF_back_angry"]
    assert (back.corpus, back.speaker, back.emotion, back.sentence, back.intensity) == (
        "tess", "OAF", "angry", "back", None)
    assert records["OAF_food_fear"].emotion == "fear"
    assert records["OAF_bath_sad"].emotion == "sad"
    bite = records["OA_bite_neutral"]  # the speaker comes from the folder
    assert (bite.speaker, bite.emotion, bite.sentence) == ("OAF", "neutral", "bite")
    assert (records["YAF_germ_disgust"].speaker, records["YAF_germ_disgust"].emotion) == ("YAF", "disgust")
    assert records["YAF_youth_happy"].sentence == "youth"
    assert found.skipped == {"surprise": 2}


def test_tess_nested_twice_counts_once(tmp_path):
    inner = f"Tess/{TESS_NESTED}/{TESS_NESTED}"
    originals = [
        make(tmp_path, f"Tess/{TESS_NESTED}/OAF_angry/OAF_back_angry.wav", seed=1),
        make(tmp_path, f"Tess/{TESS_NESTED}/YAF_sad/YAF_dog_sad.wav", seed=2),
        make(tmp_path, f"Tess/{TESS_NESTED}/YAF_pleasant_surprised/YAF_dog_ps.wav", seed=3),
    ]
    for original in originals:  # the byte-identical second copy, one level deeper
        copy = tmp_path / inner / original.parent.name / original.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(original.read_bytes())
    found = find_records([tmp_path / "Tess"])
    assert sorted(Path(r.path).stem for r in found.records) == ["OAF_back_angry", "YAF_dog_sad"]
    assert found.duplicates == 3  # two in-set clips and one surprise clip seen twice
    assert found.skipped == {"surprise": 1}  # counted once, not twice


def test_tess_needs_its_folder(tmp_path):
    make(tmp_path, "loose/OAF_back_angry.wav")  # no OAF_/YAF_ folder: not recognisable
    assert find_records([tmp_path]).records == []


# SAVEE

def test_savee_both_layouts(tmp_path):
    make(tmp_path, "SAVEE/DC_a01.wav")
    make(tmp_path, "SAVEE/JE_sa15.opus")
    make(tmp_path, "SAVEE/KL_su02.wav")  # surprise: out
    make(tmp_path, "Savee/JK_n30.wav")
    make(tmp_path, "AudioData/DC/d03.wav")
    make(tmp_path, "AudioData/KL/f07.wav")
    make(tmp_path, "AudioData/KL/h11.flac")
    make(tmp_path, "AudioData/JE/su01.wav")  # surprise: out
    make(tmp_path, "AudioData/XX/a01.wav")  # not a SAVEE speaker folder
    found = find_records([tmp_path])
    records = {(r.speaker, r.sentence): r for r in found.records}
    assert set(records) == {("DC", "a01"), ("JE", "sa15"), ("JK", "n30"), ("DC", "d03"), ("KL", "f07"), ("KL", "h11")}
    dc = records[("DC", "a01")]
    assert (dc.corpus, dc.emotion, dc.intensity) == ("savee", "angry", None)
    assert records[("JE", "sa15")].emotion == "sad"
    assert records[("JK", "n30")].emotion == "neutral"
    assert records[("DC", "d03")].emotion == "disgust"
    assert records[("KL", "f07")].emotion == "fear"
    assert records[("KL", "h11")].emotion == "happy"
    assert found.skipped == {"surprise": 2}


def test_savee_same_clip_in_both_layouts_counts_once(tmp_path):
    make(tmp_path, "SAVEE/DC_a01.wav")
    make(tmp_path, "AudioData/DC/a01.wav")
    found = find_records([tmp_path])
    assert len(found.records) == 1 and found.duplicates == 1


# nEMO, ASED, TurEV-DB

def test_nemo_layout_and_out_of_set(tmp_path):
    make(tmp_path, "nEMO/samples/EB0_anger_1.opus")
    make(tmp_path, "nEMO/samples/TP0_happiness_12.wav")
    make(tmp_path, "nEMO/samples/KS0_sadness_3.wav")
    make(tmp_path, "nEMO/samples/MK0_neutral_40.wav")
    make(tmp_path, "nEMO/samples/WR0_fear_5.wav")
    make(tmp_path, "nEMO/samples/IC0_surprised_2.wav")  # out of set
    found = find_records([tmp_path])
    records = by_stem(found)
    assert {stem: (r.corpus, r.speaker, r.emotion) for stem, r in records.items()} == {
        "EB0_anger_1": ("nemo", "EB0", "angry"), "TP0_happiness_12": ("nemo", "TP0", "happy"),
        "KS0_sadness_3": ("nemo", "KS0", "sad"), "MK0_neutral_40": ("nemo", "MK0", "neutral"),
        "WR0_fear_5": ("nemo", "WR0", "fear")}
    assert found.skipped == Counter({"surprise": 1})


def test_ased_layout_speaker_from_its_field_and_odd_case(tmp_path):
    make(tmp_path, "ASED/05Angry/a5-03-01-02-50.opus")
    make(tmp_path, "ASED/05Angry/a5-03-02-02-50.wav", seed=1)  # the second repetition is another clip
    make(tmp_path, "ASED/01Neutral/n1-01-01-01-09.wav", seed=2)
    make(tmp_path, "ASED/01Neutral/n1-01-01-02-09.wav", seed=3)  # gender field disagrees: same speaker
    make(tmp_path, "ASED/04Sad/S4-04-02-01-29.wav", seed=4)  # spelt with a capital in the release
    make(tmp_path, "ASED/02Fearful/f2-01-01-01-07.wav", seed=5)
    make(tmp_path, "ASED/03Happy/h3-01-01-01-07.wav", seed=6)
    make(tmp_path, "ASED/03Happy/x3-01-01-01-07.wav", seed=7)  # no such emotion letter
    found = find_records([tmp_path])
    records = by_stem(found)
    assert len(found.records) == 7 and found.duplicates == 0
    assert (records["a5-03-01-02-50"].speaker, records["a5-03-01-02-50"].emotion) == ("50", "angry")
    assert records["a5-03-01-02-50"].sentence == "03"
    assert {records[s].speaker for s in ("n1-01-01-01-09", "n1-01-01-02-09")} == {"09"}
    assert (records["S4-04-02-01-29"].speaker, records["S4-04-02-01-29"].emotion) == ("29", "sad")
    assert records["f2-01-01-01-07"].emotion == "fear" and records["h3-01-01-01-07"].emotion == "happy"
    assert {r.corpus for r in found.records} == {"ased"}


def test_turev_layout_calm_is_neutral(tmp_path):
    make(tmp_path, "TurEV-DB/Sound Source/Angry/1234_kz_acik.opus")
    make(tmp_path, "TurEV-DB/Sound Source/Calm/1234_sk_acik.wav", seed=1)
    make(tmp_path, "TurEV-DB/Sound Source/Happy/7895_mt_beste.wav", seed=2)
    make(tmp_path, "TurEV-DB/Sound Source/Sad/1157_hl_ogul1.wav", seed=3)
    found = find_records([tmp_path])
    records = by_stem(found)
    assert {stem: (r.corpus, r.speaker, r.emotion, r.sentence) for stem, r in records.items()} == {
        "1234_kz_acik": ("turev", "1234", "angry", "acik"), "1234_sk_acik": ("turev", "1234", "neutral", "acik"),
        "7895_mt_beste": ("turev", "7895", "happy", "beste"), "1157_hl_ogul1": ("turev", "1157", "sad", "ogul1")}


def test_banglaser_is_never_read_as_ravdess(tmp_path):
    """BanglaSER's names have RAVDESS's seven fields: only the `BanglaSER_` prefix makes them BanglaSER."""
    make(tmp_path, "BanglaSER/BanglaSER_03-01-03-02-01-01-15.opus")  # angry, strong, actor 15
    make(tmp_path, "BanglaSER/BanglaSER_01-02-05-01-03-02-07.wav", seed=1)  # neutral (mode 01, as three files say)
    make(tmp_path, "BanglaSER/BanglaSER_03-01-01-01-02-03-34.wav", seed=2)  # happy
    make(tmp_path, "BanglaSER/BanglaSER_03-01-04-01-02-03-34.wav", seed=3)  # surprise: counted, left out
    make(tmp_path, "RAVDESS/Actor_15/03-01-03-02-01-01-15.wav", seed=4)  # RAVDESS: 03 is happy there
    found = find_records([tmp_path])
    records = by_stem(found)
    assert {stem: (r.corpus, r.speaker, r.emotion, r.sentence, r.intensity) for stem, r in records.items()} == {
        "BanglaSER_03-01-03-02-01-01-15": ("banglaser", "15", "angry", "01", "strong"),
        "BanglaSER_01-02-05-01-03-02-07": ("banglaser", "07", "neutral", "03", "normal"),
        "BanglaSER_03-01-01-01-02-03-34": ("banglaser", "34", "happy", "02", "normal"),
        "03-01-03-02-01-01-15": ("ravdess", "15", "happy", "01", "strong")}
    assert found.skipped == {"surprise": 1}


# Everything together

def test_mixed_tree_with_junk(tmp_path):
    make(tmp_path, "all/CREMA-D/1001_DFA_ANG_XX.wav")
    make(tmp_path, "all/RAVDESS/Actor_03/03-01-05-01-01-01-03.WAV")  # upper-case extension
    make(tmp_path, "all/TESS/OAF_angry/OAF_back_angry.wav")
    make(tmp_path, "all/SAVEE/DC_a01.wav")
    (tmp_path / "all/README.txt").write_text("not audio")
    (tmp_path / "all/CREMA-D/1001_DFA_SAD_XX.txt").write_text("not audio either")
    # macOS resource forks in redistributed zips look like audio by extension only.
    make(tmp_path, "all/__MACOSX/TESS/OAF_angry/._OAF_back_angry.wav")
    make(tmp_path, "all/__MACOSX/CREMA-D/._1001_DFA_ANG_XX.wav")
    found = find_records([tmp_path / "all"])
    assert found.per_corpus() == {"crema-d": 1, "ravdess": 1, "savee": 1, "tess": 1}
    assert {r.emotion for r in found.records} == {"angry"}
    assert found.duplicates == 0
    only = find_records([tmp_path / "all"], corpora={"tess", "savee"})
    assert only.per_corpus() == {"savee": 1, "tess": 1}


def test_audio_files_sorted_and_by_extension(tmp_path):
    for name in ("b/2.flac", "b/1.opus", "a/3.wav", "a/4.AIFF"):
        make(tmp_path, name)
    (tmp_path / "a/5.txt").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in audio_files(tmp_path)] == [
        "a/3.wav", "a/4.AIFF", "b/1.opus", "b/2.flac"]
    single = tmp_path / "a/3.wav"
    assert audio_files(single) == [single]


def test_same_folder_twice_counts_once(tmp_path):
    make(tmp_path, "SAVEE/DC_a01.wav")
    found = find_records([tmp_path / "SAVEE", tmp_path / "SAVEE"])
    assert len(found.records) == 1 and found.duplicates == 1


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        find_records([tmp_path / "absent"])


def test_collection_extend():
    a = Collection([Record("x.wav", "custom", "s", "sad")], skipped=Counter(calm=1), excluded=["e"], duplicates=1)
    b = Collection([Record("y.wav", "custom", "t", "sad")], skipped=Counter(calm=2, surprise=1), duplicates=2)
    a.extend(b)
    assert len(a.records) == 2 and a.skipped == {"calm": 3, "surprise": 1}
    assert a.excluded == ["e"] and a.duplicates == 3
    assert a.records[0].group == "custom:s"


# The manifest

def _manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_minimal_columns(tmp_path):
    make(tmp_path, "data/clips/one.wav")
    make(tmp_path, "data/two.flac")
    csv = _manifest(tmp_path / "data/list.csv", "path,emotion\nclips/one.wav,Happy\ntwo.flac, sad \n")
    found = read_manifest(csv)
    one, two = found.records
    assert one.path == str((tmp_path / "data/clips/one.wav").resolve())  # relative to the CSV
    assert Path(one.path).is_file() and Path(two.path).is_file()
    assert (one.corpus, one.emotion, one.split) == ("custom", "happy", None)
    assert two.emotion == "sad"
    assert one.speaker == "one.wav"  # without speakers, each file is its own
    assert not found.skipped


def test_manifest_optional_columns(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "\ufeffPath, Emotion ,Speaker,Corpus,Split\n"
                    "a.wav,angry,spk1,mine,train\n"
                    "b.wav,fear,spk2,,TEST\n"
                    "c.wav,neutral,spk3,mine,\n"
                    "d.wav,calm,spk3,mine,train\n"
                    "e.wav,,spk3,mine,train\n")
    found = read_manifest(csv)
    a, b, c = found.records
    assert (a.speaker, a.corpus, a.emotion, a.split) == ("spk1", "mine", "angry", "train")
    assert (b.speaker, b.corpus, b.split) == ("spk2", "custom", "test")
    assert c.split is None
    assert found.skipped == {"calm": 1, "<empty>": 1}


def test_manifest_bad_split(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "path,emotion,split\na.wav,angry,train\nb.wav,sad,holdout\n")
    with pytest.raises(ValueError, match=r"m\.csv:3: split must be one of .*'holdout'"):
        read_manifest(csv)


def test_manifest_missing_column(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "file,label\na.wav,angry\n")
    with pytest.raises(ValueError, match="lacks column.*emotion, path"):
        read_manifest(csv)
    csv = _manifest(tmp_path / "n.csv", "path,speaker\na.wav,s1\n")
    with pytest.raises(ValueError, match="lacks column.*emotion"):
        read_manifest(csv)


def test_manifest_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(tmp_path / "absent.csv")


def test_manifest_speakers_of_known_corpora_may_carry_a_prefix(tmp_path):
    from emotionnet.corpora import select

    csv = _manifest(tmp_path / "m.csv", "path,emotion,speaker,corpus\n"
                    "a.wav,angry,crema-d-1011,crema-d\nb.wav,sad,rav08,ravdess\nc.wav,sad,Actor_03,RAVDESS\n")
    records = read_manifest(csv).records
    assert [r.speaker for r in records] == ["1011", "08", "03"]  # once: invalid literal for int()
    assert [r.corpus for r in records] == ["crema-d", "ravdess", "ravdess"]
    assert len(select(records, "all")) == 3
    assert [r.path for r in select(records, "test")] == [records[1].path, records[2].path]  # actors 8 and 3
    csv = _manifest(tmp_path / "n.csv", "path,emotion,speaker,corpus\na.wav,angry,bob,crema-d\n")
    with pytest.raises(ValueError, match=r"n.csv:2: speaker 'bob' of corpus crema-d is not a number"):
        read_manifest(csv)


def test_a_record_with_a_non_numeric_speaker_names_itself():
    from emotionnet.corpora import select

    with pytest.raises(ValueError, match=r"x/a.wav: speaker 'bob' of corpus crema-d is not a number"):
        select([Record("x/a.wav", "crema-d", "bob", "angry")], "all")


def test_manifest_empty_path_names_its_line(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "path,emotion\na.wav,angry\n,sad\n")
    with pytest.raises(ValueError, match=r"m.csv:3: empty path"):  # once: the CSV's folder, as a clip
        read_manifest(csv)
