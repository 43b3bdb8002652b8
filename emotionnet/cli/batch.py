"""`emotionnet batch`: emotions of many files into Parquet, on this machine or on Ray."""

from __future__ import annotations

import sys
import warnings

from emotionnet.cli.common import EXIT_OK, EXIT_SOME_FAILED, CLIError, add_command, add_model_option, report_failure

EXAMPLES = """  emotionnet batch recordings/ --out results.parquet              a process per core on this machine
  emotionnet batch "calls/**/*.flac" list.txt --out results.parquet globs, text files of paths, CSVs with 'path'
  emotionnet batch manifest.csv --out results.parquet --engine ray   Ray Data on a local Ray
  emotionnet batch s3://bucket/list.txt --out results.parquet --engine ray --address ray://head:10001
Rows: path, duration, speech, emotion, confidence, p_angry ... p_sad, error (a bad file is a row with error;
a file without speech has speech false and emotion null, its p_* the model's guess). Images and videos, told
by content, share the table (column media): an image row has face, n_faces and the largest face's emotion and
p_*; a video row the fused emotion and p_* beside voice_emotion, voice_confidence, face_emotion, face_confidence. Files are keyed by
their absolute path (remote ones by URL): the same file under another spelling is not scored twice.
Exit 2 while the results hold error rows for these inputs (the failed files are named), on a re-run too;
exit 2 also for a model that cannot load, an output that cannot be written, or a job that stopped early.
Error rows of the job's own making (error_kind "job") are tried again on a re-run; --retry-errors tries all.
A second job on the same output waits for the first, then scores what is still missing.
results.parquet is a folder of parts written as the job goes: a killed job keeps them, and running the
same command again skips the files already there. Read it with pandas.read_parquet("results.parquet")."""


SHOWN_FAILURES = 5  # failed files named on the console; the count gives the rest


def add_parser(sub) -> None:
    from emotionnet.models.names import FACE_MODEL  # as predict's: no torch import, --help stays fast

    p = add_command(sub, "batch", "Score many audio, image and video files into a Parquet results folder "
                    "(local or Ray).", EXAMPLES)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="folders (their audio, image and video files), globs, CSV manifests (column 'path') or "
                        "text files of paths")
    p.add_argument("--out", required=True, metavar="RESULTS.parquet", help="results folder (created; resumed if present)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: a process pool here (default); ray: Ray Data (pip install 'emotionnet[ray]')")
    p.add_argument("--address", metavar="ADDR", help="with --engine ray: join this cluster (default: a local Ray)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes or Ray actors, one core each (default: this machine's cores; "
                        "with Ray, every CPU of the cluster)")
    p.add_argument("--chunk", type=int, default=16, metavar="N", help="files per task (default 16)")
    p.add_argument("--part-rows", type=int, default=1000, metavar="N",
                   help="rows per written part; a part is also written every 30 s (default 1000)")
    add_model_option(p)
    p.add_argument("--face-model", default=FACE_MODEL, metavar="NAME|FILE",
                   help=f"the model for images and video frames (default: '{FACE_MODEL}'), loaded once per worker")
    p.add_argument("--max-seconds", type=float, metavar="S", help="give files longer than this an error row")
    p.add_argument("--verbose", action="store_true",
                   help="with --engine ray: show Ray's own warnings and log lines (default: errors of the job only)")
    p.add_argument("--retry-errors", action="store_true",
                   help="score again the files whose rows hold an error of their own (bad audio); errors of "
                        "the job (a failed read or scoring) are always tried again")
    p.set_defaults(run=run)


def run(args) -> int:
    import signal

    from emotionnet.batch import run_batch
    from emotionnet.batch.job import BatchJobError
    from emotionnet.batch.output import OutputError
    from emotionnet.cli.common import load_recognizer, model_settings
    from emotionnet.inference.recognizer import resolve_model_path
    from emotionnet.models.names import display_name

    if args.address and args.engine != "ray":
        raise CLIError("--address needs --engine ray")
    if args.workers is not None and args.workers < 1:
        raise CLIError("--workers must be at least 1")
    if args.chunk < 1 or args.part_rows < 1:
        raise CLIError("--chunk and --part-rows must be at least 1")
    if args.engine == "ray":
        if not args.verbose:  # Ray's deprecation and future warnings are its own business
            warnings.filterwarnings("ignore", module=r"ray(\.|$)")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise CLIError("--engine ray needs Ray", "pip install 'emotionnet[ray]'") from None
    environment = model_settings()  # read once here; the workers get what it says as arguments
    model = args.model or environment.model
    try:
        voice = load_recognizer(model)  # a model that cannot load is one line here, never a row per file
    except CLIError as exc:
        exc.code = EXIT_SOME_FAILED
        raise
    # SIGTERM (docker stop, Kubernetes, systemd) as Ctrl-C: finished rows written, workers stopped
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run_batch(args.inputs, args.out, engine=args.engine, workers=args.workers, chunk=args.chunk,
                            model=model, max_seconds=args.max_seconds, address=args.address,
                            progress=sys.stderr.isatty(), part_rows=args.part_rows, retry_errors=args.retry_errors,
                            on_wait=lambda message: print(f"emotionnet: {message}", file=sys.stderr, flush=True),
                            load_options=environment.load_options(), verbose=args.verbose,
                            face_model=args.face_model)
    except (FileExistsError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    except OutputError as exc:
        raise CLIError(str(exc), "nothing was scored: give --out a folder you can write to",
                       code=EXIT_SOME_FAILED) from None
    except BatchJobError as exc:
        raise CLIError(str(exc), "the finished rows are kept: run the same command again to go on",
                       code=EXIT_SOME_FAILED) from None
    for item in summary.empty_inputs:
        report_failure(item, "matches no audio, image or video files")
    print(f"emotionnet: {summary.files} files: {summary.scored} scored ({summary.failed} with an error), "
          f"{summary.skipped} already in {args.out}; {summary.seconds:.1f} s; voice model "
          f"{display_name(voice.model_file)}, face model {display_name(resolve_model_path(args.face_model))}",
          file=sys.stderr)
    if summary.failed_paths:
        print(failed_files_line(summary.failed_paths, args.out), file=sys.stderr)
    # exit 2 whenever the output holds error rows for these inputs, on a re-run too
    return EXIT_SOME_FAILED if summary.output_has_errors or summary.empty_inputs else EXIT_OK


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def failed_files_line(paths: list[str], out: str, shown: int = SHOWN_FAILURES) -> str:
    """`emotionnet: 12 files have an error row in OUT: a.wav, b.wav, c.wav and 9 more (column 'error')`."""
    names = ", ".join(paths[:shown]) + (f" and {len(paths) - shown} more" if len(paths) > shown else "")
    what = "1 file has" if len(paths) == 1 else f"{len(paths)} files have"
    return f"emotionnet: {what} an error row in {out}: {names} (the reason is in its column 'error')"
