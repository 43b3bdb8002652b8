"""Smoke tests of benchmarks/serve.py and benchmarks/batch.py on tiny runs, so they cannot rot (figures mean nothing)."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # browser, Ray, service and training tests (pyproject markers)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def test_serve_benchmark_smoke(tiny_model_file, tmp_path, capsys):
    pytest.importorskip("fastapi", reason="needs the serve extra")
    pytest.importorskip("websockets", reason="needs websockets")
    pytest.importorskip("psutil", reason="needs psutil")
    from benchmarks import serve

    out = tmp_path / "serve.json"
    assert serve.main(["--model", str(tiny_model_file), "--clients", "1,2", "--requests", "6", "--duration", "2",
                       "--stream-seconds", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [level["ok"] for level in result["levels"]] == [6, 6]
    assert result["soak"]["ok"] > 0 and result["soak"]["rss_mb"]["start"] > 0 and not result["soak"]["errors"]
    assert result["stream"]["client"]["n"] == 2
    assert "req/s" in capsys.readouterr().out


@pytest.mark.slow  # a server start, five requests and a probe of at most 40 s
def test_serve_faults_benchmark_smoke(tiny_model_file, tmp_path, capsys):
    pytest.importorskip("fastapi", reason="needs the serve extra")
    pytest.importorskip("websockets", reason="needs websockets")
    pytest.importorskip("psutil", reason="needs psutil")
    from benchmarks import serve_faults

    out = tmp_path / "faults.json"
    assert serve_faults.main(["--model", str(tiny_model_file), "--probes", "heavy_stream", "--json", str(out)]) == 0
    probe = json.loads(out.read_text())["probes"]["heavy_stream"]
    assert probe["idle_rss_mb"] > 0 and probe["normal_requests"] > 0 and "1009" in probe["one_message"]["end"]
    assert probe["pieces"]["results"] > 0
    assert "heavy_stream" in capsys.readouterr().out


def test_batch_benchmark_smoke(tiny_model_file, tmp_path, capsys):
    from benchmarks import batch

    out = tmp_path / "batch.json"
    assert batch.main(["--model", str(tiny_model_file), "--files", "6", "--clip-seconds", "1", "--engines", "local",
                       "--workers", "1", "--chunk", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["results"]
    assert row["files"] == 6 and row["errors"] == 0 and "steady_files_per_s" in row  # tiny: the figure is noise
    assert "audio h per core-hour" in capsys.readouterr().out
