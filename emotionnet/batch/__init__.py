"""`emotionnet batch`: many files, one row each, on this machine or a Ray cluster.

    from emotionnet.batch import BatchPredictor, run_batch
    summary = run_batch(["recordings/"], "results.parquet", engine="local", workers=2)
    BatchPredictor().predict_paths(["a.wav"])   # the engine-independent core
"""

from emotionnet.batch.job import BatchSummary, run_batch
from emotionnet.batch.output import ResultsFolder, read_results
from emotionnet.batch.predictor import COLUMNS, BatchPredictor

__all__ = ["COLUMNS", "BatchPredictor", "BatchSummary", "ResultsFolder", "read_results", "run_batch"]
