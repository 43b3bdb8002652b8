"""Split protocol v2 (v1 plus three corpora): fixed speaker lists, TESS by word, custom data by a stable hash."""

from __future__ import annotations

from collections import Counter

import pytest

from emotionnet.corpora import SPLIT_NAME, Record, check_split, find_records, read_manifest, select, split_of
from emotionnet.corpora.split import TESS_WORDS


def sides(records: list[Record]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for r in records:
        found[split_of(r)].add(r.speaker if r.corpus != "tess" else r.sentence)
    return found


def test_split_name():
    assert SPLIT_NAME == "v3"


def test_crema_d_lists():
    records = [Record(f"{s}_DFA_ANG_XX.wav", "crema-d", str(s), "angry", "DFA", "XX") for s in range(1001, 1092)]
    found = sides(records)
    assert found["test"] == {str(s) for s in range(1005, 1091, 5)}
    assert len(found["test"]) == 18
    assert found["val"] == {str(s) for s in range(1003, 1084, 10)}
    assert len(found["val"]) == 9
    assert len(found["train"]) == 91 - 18 - 9
    assert "1001" in found["train"] and "1091" in found["train"]


def test_ravdess_lists():
    records = [Record(f"03-01-05-01-01-01-{a:02d}.wav", "ravdess", f"{a:02d}", "angry", "01", "normal")
               for a in range(1, 25)]
    found = sides(records)
    assert found["test"] == {"03", "08", "13", "18", "21", "24"}
    assert found["val"] == {"06", "11"}
    assert len(found["train"]) == 16


def test_tess_words():
    assert len(TESS_WORDS) == 200 == len(set(TESS_WORDS))
    assert list(TESS_WORDS) == sorted(TESS_WORDS)
    records = [Record(f"{spk}_{w}_angry.wav", "tess", spk, "angry", w) for w in TESS_WORDS for spk in ("OAF", "YAF")]
    found = sides(records)
    assert found["test"] == {w for i, w in enumerate(TESS_WORDS) if i % 5 == 4}
    assert found["val"] == {w for i, w in enumerate(TESS_WORDS) if i % 10 == 2}
    assert (len(found["test"]), len(found["val"]), len(found["train"])) == (40, 20, 140)
    assert TESS_WORDS[:5] == ("back", "bar", "base", "bath", "bean")
    assert split_of(Record("x", "tess", "OAF", "sad", "back")) == "train"  # index 0
    assert split_of(Record("x", "tess", "OAF", "sad", "base")) == "val"  # index 2
    assert split_of(Record("x", "tess", "YAF", "sad", "bean")) == "test"  # index 4
    # Both speakers of a word fall on the same side.
    for w in TESS_WORDS:
        assert split_of(Record("x", "tess", "OAF", "sad", w)) == split_of(Record("x", "tess", "YAF", "fear", w))
    check_split(records)


def test_savee_lists():
    records = [Record(f"{s}_a01.wav", "savee", s, "angry", "a01") for s in ("DC", "JE", "JK", "KL")]
    assert sides(records) == {"test": {"JK"}, "val": {"DC"}, "train": {"JE", "KL"}}


def test_custom_split_is_a_stable_hash_of_the_speaker():
    def side(speaker: str, path: str = "a.wav", emotion: str = "sad") -> str:
        return split_of(Record(path, "custom", speaker, emotion))

    # Pinned: a change of hash would silently move people's speakers between sides.
    assert {s: side(s) for s in ("alice", "bob", "carol", "ivan", "judy")} == {
        "alice": "train", "bob": "test", "carol": "train", "ivan": "val", "judy": "val"}
    # Only the speaker decides, not the file or its label.
    assert side("bob", "z/other.wav", "angry") == "test"
    counts = Counter(side(f"spk{i}") for i in range(1000))
    assert counts == {"train": 795, "test": 110, "val": 95}  # about 80/10/10
    # Speakers are keyed with their corpus: the same name in another corpus may land elsewhere.
    assert split_of(Record("a.wav", "mine", "bob", "sad")) in ("train", "val", "test")


def test_manifest_split_column_wins():
    record = Record("a.wav", "crema-d", "1005", "angry", split="train")
    assert split_of(record) == "train"  # 1005 would be test by v1


def test_select():
    records = [Record(f"{s}.wav", "savee", s, "sad", "sa01") for s in ("DC", "JE", "JK", "KL")]
    assert [r.speaker for r in select(records, "train")] == ["JE", "KL"]
    assert [r.speaker for r in select(records, "test")] == ["JK"]
    assert [r.speaker for r in select(records, "val")] == ["DC"]
    assert select(records, "all") == records


def test_check_split_refuses_a_speaker_on_two_sides(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("path,emotion,speaker,split\n"
                   "a.wav,angry,s1,train\nb.wav,sad,s1,test\nc.wav,sad,s2,val\n")
    records = read_manifest(csv).records
    with pytest.raises(ValueError, match="not speaker-independent: custom:s1"):
        check_split(records)
    with pytest.raises(ValueError, match="speaker-independent"):
        select(records, "train")
    check_split(records[1:])  # without the leak it passes


def test_check_split_counts_speakers_per_corpus():
    # The same speaker name in two corpora is two speakers.
    records = [Record("a.wav", "one", "s1", "sad", split="train"), Record("b.wav", "two", "s1", "sad", split="test")]
    check_split(records)


def test_check_split_refuses_a_tess_word_on_two_sides():
    records = [Record("a.wav", "tess", "OAF", "sad", "back"), Record("b.wav", "tess", "YAF", "sad", "back", split="test")]
    with pytest.raises(ValueError, match="tess-word:back"):
        check_split(records)


def _every_kind_of_clip() -> list[Record]:
    """Each speaker (TESS: each word) with clips of every emotion, sentence and intensity."""
    records = []
    for emotion in ("angry", "sad", "neutral"):
        for variant in ("DFA", "IEO"):
            records += [Record("c", "crema-d", str(s), emotion, variant, "HI") for s in range(1001, 1092)]
            records += [Record("r", "ravdess", f"{a:02d}", emotion, variant, "strong") for a in range(1, 25)]
            records += [Record("s", "savee", s, emotion, variant) for s in ("DC", "JE", "JK", "KL")]
            records += [Record("t", "tess", who, emotion, word) for who in ("OAF", "YAF") for word in TESS_WORDS]
    return records


def test_v1_puts_each_speaker_on_one_side_whatever_the_clip():
    records = _every_kind_of_clip()
    check_split(records)
    for corpus in ("crema-d", "ravdess", "savee", "tess"):
        found = sides([r for r in records if r.corpus == corpus])
        assert not found["train"] & found["val"] and not found["train"] & found["test"]
        assert not found["val"] & found["test"], corpus
        assert all(found.values()), corpus  # every side has someone


def test_a_speaker_on_two_sides_is_refused():
    # A manifest's split column can put one speaker on two sides: the check must catch it.
    records = [Record("a.wav", "custom", "alice", "sad", split="train"),
               Record("b.wav", "custom", "alice", "happy", split="test"),
               Record("c.wav", "custom", "bob", "sad", split="test")]
    with pytest.raises(ValueError, match="custom:alice on several sides"):
        check_split(records)
    with pytest.raises(ValueError, match="not speaker-independent"):
        select(records, "test")
    check_split(records[1:])


def test_v2_lists_of_the_added_corpora():
    nemo = [Record("n", "nemo", s, "sad") for s in ("EB0", "IC0", "KD0", "KS0", "MK0", "MP0", "SM0", "TP0", "WR0")]
    assert sides(nemo) == {"test": {"EB0", "TP0"}, "val": {"KS0"},
                           "train": {"IC0", "KD0", "MK0", "MP0", "SM0", "WR0"}}
    ased = sides([Record("a", "ased", f"{s:02d}", "sad") for s in range(1, 66)])
    assert ased["test"] == {f"{s:02d}" for s in range(5, 66, 5)} and len(ased["test"]) == 13
    assert ased["val"] == {f"{s:02d}" for s in range(3, 64, 10)} and len(ased["val"]) == 7
    assert len(ased["train"]) == 65 - 13 - 7
    turev = [Record("t", "turev", s, "sad") for s in ("1157", "1234", "1358", "1984", "6783", "7895")]
    assert sides(turev) == {"test": {"1358"}, "val": {"1984"}, "train": {"1157", "1234", "6783", "7895"}}


def test_v3_adds_banglaser():
    bangla = sides([Record("b", "banglaser", f"{s:02d}", "sad") for s in range(1, 35)])
    assert bangla["test"] == {"05", "10", "15", "20", "25", "30"}
    assert bangla["val"] == {"03", "08", "23", "28"}
    assert len(bangla["train"]) == 24


@pytest.mark.corpus
def test_real_corpora_split_counts(shared_data):
    found = find_records([shared_data])
    assert len(found.records) == 19_667
    assert len(found.excluded) == 6
    assert found.duplicates == 0
    assert found.per_corpus() == {"ased": 2_474, "banglaser": 1_160, "crema-d": 6_698, "nemo": 3_812, "ravdess": 968,
                                  "savee": 420, "tess": 2_400, "turev": 1_735}
    assert found.skipped == {"calm": 176, "surprise": 1_611}
    test = select(found.records, "test")
    assert Counter(r.corpus for r in test) == {"crema-d": 1_476, "ravdess": 264, "tess": 480, "savee": 105,
                                               "nemo": 900, "ased": 612, "turev": 328, "banglaser": 207}
    # Every fixed-list speaker that is present lands on its side; kept-back ones are absent.
    crema = {r.speaker for r in found.records if r.corpus == "crema-d"}
    assert len(crema) == 82 and not crema & {str(s) for s in range(1011, 1092, 10)}
    ravdess = {r.speaker for r in found.records if r.corpus == "ravdess"}
    assert len(ravdess) == 22 and not ravdess & {"01", "02"}
    assert {r.sentence for r in found.records if r.corpus == "tess"} == set(TESS_WORDS)


def test_evaluate_defaults_to_test_unless_a_manifest_has_no_split():
    from emotionnet.evaluation.evaluate import default_split

    custom = [Record("a.wav", "custom", "alice", "sad"), Record("b.wav", "custom", "bob", "sad")]
    assert default_split(custom) == "all"  # nothing says which clips are held out
    assert default_split([*custom[:1], Record("c.wav", "custom", "carol", "sad", split="test")]) == "test"
    assert default_split([*custom, Record("c", "savee", "JK", "sad")]) == "test"  # a known corpus has its lists
