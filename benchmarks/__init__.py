"""The benchmarks: each script runs as a module from the repository root, e.g.
`python -m benchmarks.speed`, so the checkout's `emotionnet` is the one measured.

Scripts (each with a `main`) import nothing from one another; what they share is in
`common.py` (data, generated speech, timing, the trained-model cache) and
`peer_methods.py` (the classic peers' features and classifiers), and the generalisation
benchmark's report (Markdown, verdicts, plots) is `generalisation_report.py`.
"""
