"""Corpora: folders and manifests in, labelled records out, split by speaker."""

from emotionnet.corpora.discover import audio_files, find_records
from emotionnet.corpora.manifest import read_manifest
from emotionnet.corpora.records import Collection, Record
from emotionnet.corpora.split import PROTOCOL_CORPORA, SPLIT_NAME, check_split, select, split_of

__all__ = [
    "PROTOCOL_CORPORA", "SPLIT_NAME", "Collection", "Record", "audio_files", "check_split",
    "find_records", "read_manifest", "select", "split_of",
]
