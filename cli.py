"""medaudit: generate and detect synthetic medical images; score deepfake risk and write audit reports.

Thin by design: parse options, call the library, print. Heavy imports (torch) happen inside commands so that
``medaudit --help`` is instant. Exit status: 0 done; 1 an image at or above --fail-on (or an error with
--fail-on-error); 2 usage or setup error; 3 the run itself failed (disk full, a bug): one line on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

LEVEL_ORDER = {"low": 0, "medium": 1, "high": 2}
EXIT_CRASH = 3  # 1 means "an image reached --fail-on": a failed run must not be mistaken for a verdict


class _Commands(click.Group):
    """The command group, turning any uncaught exception into exit status EXIT_CRASH and one line on stderr.

    Files that cannot be scanned are records, not exceptions; what gets here is the run failing (disk full, an
    unwritable output, a bug), which a batch script must tell from exit 1 without parsing a traceback.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):  # usage errors (2), exits, Ctrl-C
            raise
        except Exception as exc:  # the one place every other failure is reported
            from forensics.writers import printable

            click.echo(f"medaudit: failed: {printable(f'{type(exc).__name__}: {exc}')}", err=True)
            sys.exit(EXIT_CRASH)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="medaudit")
def main() -> None:
    """Generate and detect synthetic medical images, score deepfake risk, write audit reports."""


# --- shared scan options -----------------------------------------------------------------------------------------


def _default_max_bytes() -> int:
    # read when a command runs, not when cli is imported: forensics.io loads numpy, and --help stays instant
    from forensics.io.guarded import DEFAULT_MAX_BYTES

    return DEFAULT_MAX_BYTES


def _max_bytes_option():
    """--max-bytes, the same for every command that reads image files (scan, audit, screen, index add)."""
    return click.option("--max-bytes", type=click.IntRange(1), default=_default_max_bytes,
                        show_default="1 GiB",
                        help="Refuse files larger than this many bytes (too_large), checked before reading.")


def _root_options(func):
    """--root / --allow-outside: where the paths a claims CSV names may lie (screen)."""
    func = click.option("--allow-outside", is_flag=True,
                        help="Read CSV paths wherever they point (default: only under the root).")(func)
    return click.option("--root", type=click.Path(exists=True, file_okay=False), default=None,
                        help="Folder the CSV's paths must lie under (default: the CSV's folder); others get an "
                             "outside_root error record and are not read.")(func)


def _scan_options(func):
    options = [
        click.option("--workers", "-j", type=click.IntRange(1, 256), default=1, show_default=True,
                     help="Processes scanning in parallel."),
        click.option("--analyzers", default=None, metavar="NAMES",
                     help="Comma-separated analyzers to run (default: every available one; see `medaudit list`)."),
        click.option("--max-pixels", type=click.IntRange(1), default=None,
                     help="Refuse images declaring more pixels than this (default 2**27, about 134 million)."),
        _max_bytes_option(),
        click.option("--timeout", "timeout_s", type=click.FloatRange(0), default=60.0, show_default=True,
                     help="Per-file time limit in seconds (0: none)."),
        click.option("--weights", "weights_dir", type=click.Path(exists=True, file_okay=False), default=None,
                     help="Detectors trained by `medaudit train detector` (default: the bundled ones)."),
        click.option("--modality-gate/--no-modality-gate", "modality_gate", default=True, show_default=True,
                     help="Images without a DICOM modality get the one their pixels look like; pixel detectors "
                          "abstain on MR, MG and unrecognised (OT) ones. Turn off for detectors you trained on "
                          "other modalities (--weights)."),
        click.option("--threshold-medium", type=click.FloatRange(0, 1), default=None,
                     help="Lowest risk called medium (default 0.5)."),
        click.option("--threshold-high", type=click.FloatRange(0, 1), default=None,
                     help="Lowest risk called high (default 0.9)."),
        click.option("--fail-on", type=click.Choice(list(LEVEL_ORDER)), default=None,
                     help="Exit 1 when any image reaches this level."),
        click.option("--fail-on-error", is_flag=True, help="Exit 1 when any input could not be scanned."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar on stderr."),
        click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                     help="Where to run: this machine's processes, or dask.distributed."),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler (tcp://host:8786); without it --engine dask starts a LocalCluster."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _build_options(analyzers, max_pixels, timeout_s, weights_dir, threshold_medium, threshold_high, **extra):
    from dataclasses import replace

    from forensics.fusion import FusionConfig
    from forensics.io import DEFAULT_MAX_PIXELS
    from forensics.scanner import ScanOptions

    fusion = FusionConfig.for_weights(weights_dir or None)
    try:
        fusion = replace(
            fusion,
            medium=fusion.medium if threshold_medium is None else threshold_medium,
            high=fusion.high if threshold_high is None else threshold_high,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    names = None
    if analyzers:
        from forensics.analyzers import list_analyzers

        names = [n.strip() for n in analyzers.split(",") if n.strip()]
        unknown = sorted(set(names) - set(list_analyzers()))
        if unknown:
            raise click.UsageError(f"unknown analyzer(s): {', '.join(unknown)}; see `medaudit list`")
    return ScanOptions(analyzers=names, fusion=fusion, max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
                       timeout_s=timeout_s, weights_dir=weights_dir, **extra)


def _exit_status(results_levels: list[str | None], errors: int, fail_on: str | None, fail_on_error: bool) -> int:
    if fail_on and any(lv is not None and LEVEL_ORDER[lv] >= LEVEL_ORDER[fail_on] for lv in results_levels):
        return 1
    return 1 if fail_on_error and errors else 0


def _summary_line(levels: list[str | None], errors: int) -> str:
    counts = {lv: levels.count(lv) for lv in LEVEL_ORDER}
    parts = [f"{n} {lv}" for lv, n in counts.items()] + [f"{errors} error"]
    return f"scanned {len(levels) + errors}: " + ", ".join(parts)


# --- scan ------------------------------------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "table"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write here (atomically, on completion) instead of stdout.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run into the same -o FILE; skip what it wrote.")
@click.option("--index", "index_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reuse index (see `medaudit index`): report images already filed under another claim.")
@_scan_options
def scan(paths, fmt, output, resume, index_path, workers, fail_on, fail_on_error, quiet, engine, scheduler, **opts):
    """Score each image in PATHS (files or folders, walked recursively) for deepfake risk.

    One JSON line per input on stdout (or -o FILE): risk, level, and the findings with their evidence.
    Files that cannot be scanned give an error record with a code; the run goes on.
    """
    from forensics.scanner import scan_paths
    from forensics.writers import ResultWriter

    options = _build_options(**opts, index_path=index_path)
    try:
        writer = ResultWriter(fmt, output, resume=resume)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    levels, errors = [], 0
    try:
        for result in scan_paths(paths, options, workers=workers, skip=writer.done, progress=not quiet,
                                 engine=engine, scheduler=scheduler):
            writer.write(result)
            if result.status == "ok":
                levels.append(result.level)
            else:
                errors += 1
    except KeyboardInterrupt:
        writer.close(complete=False)
        click.echo("interrupted; rerun with --resume to continue", err=True)
        sys.exit(130)
    writer.close()
    if not quiet:
        click.echo(_summary_line(levels, errors) + (f" ({len(writer.done)} resumed)" if writer.done else ""), err=True)
    sys.exit(_exit_status(levels, errors, fail_on, fail_on_error))


# --- audit -----------------------------------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.html, report.json and report.csv.")
@click.option("--include-phi", is_flag=True, help="Show patient identifiers in the report (redacted by default).")
@_scan_options
def audit(paths, out_dir, include_phi, workers, fail_on, fail_on_error, quiet, engine, scheduler, **opts):
    """Scan PATHS and write a self-contained audit report (HTML, JSON, CSV) into --out."""
    from forensics.audit import audit as run_audit

    options = _build_options(**opts, thumbnails=True, include_phi=include_phi)
    results, written = run_audit(paths, out_dir, options, workers=workers, progress=not quiet, engine=engine,
                                 scheduler=scheduler)
    levels = [r.level for r in results if r.status == "ok"]
    errors = sum(r.status == "error" for r in results)
    click.echo(_summary_line(levels, errors), err=True)
    for kind, path in written.items():
        click.echo(f"{kind}\t{path}")
    sys.exit(_exit_status(levels, errors, fail_on, fail_on_error))


# --- screen ----------------------------------------------------------------------------------------------------


@main.command()
@click.argument("claims_csv", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for images.jsonl, claims.jsonl and report.html/json/csv.")
@click.option("--index", "index_path", type=click.Path(dir_okay=False), default=None,
              help="Reuse index (SQLite) of earlier claims; this batch is filed into it. Default: OUT/reuse.sqlite.")
@click.option("--resume", is_flag=True, help="Continue an interrupted screening in the same --out.")
@click.option("--include-phi", is_flag=True, help="Show patient identifiers in the report (redacted by default).")
@_root_options
@_scan_options
def screen(claims_csv, out_dir, index_path, resume, include_phi, root, allow_outside, workers, fail_on, fail_on_error,
           quiet, engine, scheduler, **opts):
    """Screen the claims in CLAIMS_CSV (columns claim_id, path): per-image records, per-claim summary, report.

    Every image is filed in the reuse index under its claim first, so the same scan attached to two claims is
    caught within the batch and against earlier ones. --fail-on applies to claims: exit 1 when any claim's highest
    risk reaches the level. Paths must lie under --root (default: the CSV's folder) unless --allow-outside.
    """
    import os

    from forensics.screening import read_claims, screen_claims

    try:
        items = read_claims(claims_csv)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = _build_options(**opts, thumbnails=True, include_phi=include_phi)
    try:
        summaries, written = screen_claims(
            items, out_dir, options, index_path=index_path, resume=resume, workers=workers, progress=not quiet,
            engine=engine, scheduler=scheduler,
            root=None if allow_outside else (root or os.path.dirname(os.path.abspath(claims_csv))),
        )
    except KeyboardInterrupt:
        click.echo("interrupted; rerun with --resume to continue", err=True)
        sys.exit(130)
    from forensics.writers import printable

    for c in summaries:
        risk = "—" if c["max_risk"] is None else f"{c['max_risk']:.2f}"
        reasons = printable("; ".join(c["reasons"][:2]))
        click.echo(f"{c['level'] or 'error':<6} {risk:>5}  claim {printable(c['claim_id'])}: {reasons}", err=True)
    for kind, path in written.items():
        click.echo(f"{kind}\t{path}")
    levels = [c["level"] for c in summaries]
    sys.exit(_exit_status(levels, sum(c["errors"] for c in summaries), fail_on, fail_on_error))


# --- reuse index -----------------------------------------------------------------------------------------------


@main.group()
def index():
    """File images under claims in a reuse index, and look images up in it."""


@index.command("add")
@click.argument("paths", nargs=-1, required=True)
@click.option("--claim", "claim_id", required=True, help="The claim these images were filed with.")
@click.option("--db", "db", type=click.Path(dir_okay=False), required=True, help="SQLite index (created if absent).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Per-file time limit in seconds (0: none).")
@_max_bytes_option()
@click.option("--quiet", "-q", is_flag=True)
def index_add(paths, claim_id, db, timeout_s, max_bytes, quiet):
    """Add the images in PATHS (files or folders) to the index under --claim; prints counts and the files that
    could not be filed (with their error codes) as JSON."""
    from forensics.reuse import add_paths

    click.echo(json.dumps(add_paths(db, paths, claim_id, progress=not quiet, timeout_s=timeout_s,
                                    max_bytes=max_bytes)))


@index.command("query")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--limit", type=click.IntRange(1), default=5, show_default=True)
def index_query(path, db, limit):
    """Images in the index that PATH is a copy of (flipped, rotated, cropped, re-encoded …), as JSON Lines."""
    from forensics.reuse import query_path

    for match in query_path(db, path, limit=limit):
        click.echo(json.dumps(match))


# --- list ------------------------------------------------------------------------------------------------------


@main.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_cmd(fmt):
    """Show the analyzers (and bundled generators) and whether each can run here, and why not."""
    from forensics.analyzers import create_analyzer, list_analyzers

    rows = []
    for name in list_analyzers():
        analyzer = create_analyzer(name)
        ok, why = analyzer.availability()
        rows.append({"type": "analyzer", "name": name, "version": analyzer.version, "kind": analyzer.kind,
                     "available": ok, "reason": why, "default": analyzer.default})
    rows += _bundled_generator_rows()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "available" if r["available"] else f"unavailable: {r['reason']}"
        state += "" if r.get("default", True) else " (opt-in: --analyzers)"
        click.echo(f"{r['type']:<10} {r['name']:<14} {r['version']:<8} {r.get('kind', ''):<8} {state}")


def _bundled_generator_rows() -> list[dict]:
    try:
        from generators import list_bundled
    except ImportError as exc:
        return [{"type": "generator", "name": "*", "version": "", "kind": "", "available": False, "reason": str(exc)}]
    return [{"type": "generator", "name": g["name"], "version": g.get("version", ""), "kind": g["family"],
             "available": True, "reason": ""} for g in list_bundled()]


# --- demo ------------------------------------------------------------------------------------------------------


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-report"),
              show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def demo(out_dir, quiet):
    """Audit a demo folder: real scanner DICOMs shipped with pydicom and nibabel, plus synthetic images."""
    from benchmarks.demo_set import build_demo_set
    from forensics.audit import audit as run_audit

    inputs = out_dir / "inputs"
    build_demo_set(inputs)
    results, written = run_audit([inputs], out_dir, progress=not quiet)
    for r in results:
        verdict = f"{r.level:<6} {r.risk:.2f}" if r.status == "ok" else f"error  {r.error.code}"
        click.echo(f"{verdict:<28} {Path(r.path).relative_to(inputs)}", err=True)
    levels = [r.level for r in results if r.status == "ok"]
    click.echo(_summary_line(levels, sum(r.status == "error" for r in results)), err=True)
    click.echo(f"report\t{written['html']}")


# --- generators ------------------------------------------------------------------------------------------------


@main.command()
@click.argument("name_or_ckpt")
@click.option("-n", "n", type=click.IntRange(1), default=8, show_default=True, help="How many images.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--format", "fmt", type=click.Choice(["png", "png16", "dicom"]), default="png", show_default=True,
              help="8-bit PNG, 16-bit PNG, or a Secondary Capture DICOM.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:1 …")
@click.option("--quiet", "-q", is_flag=True)
def generate(name_or_ckpt, n, out_dir, fmt, seed, device, quiet):
    """Sample N synthetic images from a bundled generator (see `medaudit list`) or a checkpoint folder.

    Every image is stamped: an invisible watermark plus labels (PNG iTXt/XMP; DICOM Conversion Type SYN).
    """
    from generators import generate as sample_to_files

    try:
        written = sample_to_files(name_or_ckpt, n, out_dir, fmt=fmt, seed=seed, device=device, progress=not quiet)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    for path in written:
        click.echo(str(path))


@main.command()
@click.argument("mode", type=click.Choice(["inject", "remove"]))
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--at", "at", required=True, metavar="X,Y", help="Centre of the lesion in pixels (column,row).")
@click.option("--radius", type=click.FloatRange(1), default=None, help="Lesion radius in pixels (default: by size).")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="PNG, or DICOM (.dcm, from DICOM input) keeping the original's metadata.")
@click.option("--no-stamp", is_flag=True, help="Leave the output unlabelled (benchmarks only).")
@click.option("--seed", type=int, default=0, show_default=True)
def tamper(mode, image, at, radius, out, no_stamp, seed):
    """INJECT a nodule-like lesion into a chest CT or X-ray IMAGE, or REMOVE one (a 2-D CT-GAN attack).

    The output is stamped as manipulated (watermark, compositeWithTrainedAlgorithmicMedia, DICOM DERIVED with the
    medaudit private block) unless --no-stamp: the realistic fraud case, for testing detectors.
    """
    from generators.tamper import tamper_file

    try:
        x, y = (float(v) for v in at.split(","))
    except ValueError:
        raise click.BadParameter("expected X,Y, e.g. 200,180", param_hint="--at") from None
    try:
        info = tamper_file(image, out, mode=mode, at=(x, y), radius=radius, stamp=not no_stamp, seed=seed)
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(info, default=str))


@main.group()
def train():
    """Train generators or detectors on your own folders."""


@train.command("generator")
@click.argument("family", type=click.Choice(["gan", "vae", "ddpm"]))
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True),
              help="Folder (or DICOM series) of training images; repeatable.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Checkpoint folder (weights.safetensors + config.json); an existing one is resumed.")
@click.option("--resolution", type=click.Choice(["32", "64", "128"]), default="64", show_default=True)
@click.option("--max-steps", type=click.IntRange(1), default=None)
@click.option("--time-budget", "time_budget", type=click.FloatRange(0), default=None, help="Seconds.")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train_generator_cmd(family, data, out, resolution, max_steps, time_budget, batch_size, device, seed, quiet):
    """Train a FAMILY generator on --data; writes sample grids and a resumable checkpoint to --out."""
    from generators import train_generator

    if max_steps is None and time_budget is None:
        raise click.UsageError("give --max-steps or --time-budget (or both)")
    try:
        ckpt = train_generator(family, list(data), out, resolution=int(resolution), max_steps=max_steps,
                               time_budget_s=time_budget, device=device, seed=seed, batch_size=batch_size,
                               progress=not quiet)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(str(ckpt))


# --- benchmarks ------------------------------------------------------------------------------------------------


@main.group()
def bench():
    """Measure speed and accuracy; --write-docs updates that section of docs/BENCHMARKS.md."""


_write_docs = click.option("--write-docs", type=click.Path(dir_okay=False), default=None,
                           help="Update this benchmark's section of a Markdown file (docs/BENCHMARKS.md).")
_bench_db = click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path),
                         default=Path(".cache/medaudit-bench/results.sqlite"), show_default=True,
                         help="SQLite results store.")
DATA_ENV = "MEDAUDIT_DATA"
_DATA_FOLDERS = "a folder with cxr_kermany/, ct_lung_tcia/, derm_isic/ or any of them"


def _require_data(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    if value is None:
        raise click.UsageError(f"no data folder: give --data DIR or set {DATA_ENV} ({_DATA_FOLDERS})", ctx=ctx)
    return value


def _data_option(help: str = "Real images: cxr_kermany/, ct_lung_tcia/, derm_isic/ below it."):
    """``--data DIR`` (or $MEDAUDIT_DATA) for the commands that read a data folder; required, with no default."""
    return click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                        envvar=DATA_ENV, default=None, callback=_require_data,
                        help=f"{help} [env var: {DATA_ENV}; required]")


def _evaluate(name: str, write_docs: str | None, db: Path, **params) -> None:
    """Run registered evaluation ``name`` into the results store, print its Markdown, update its docs section."""
    import shlex

    from benchmarks.evaluations import run_evaluation

    command = shlex.join(["medaudit", *sys.argv[1:]])
    run_id, section = run_evaluation(name, db=db, command=command, **params)
    click.echo(section.markdown)
    if write_docs:
        from benchmarks.docs import update_section

        update_section(write_docs, section.name, section.title, section.markdown, command=command)
    click.echo(f"run {run_id} stored in {db}", err=True)


@bench.command("scan-speed")
@click.option("-n", "n", type=click.IntRange(1), default=400, show_default=True, help="Files per format.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
@click.option("--size", type=click.IntRange(8), default=512, show_default=True)
@click.option("--analyzers", default="metadata", show_default=True, help="Comma-separated; 'all' for every one.")
@click.option("--engines", default="local", show_default=True, help="Comma-separated: local, dask (side by side).")
@_bench_db
@_write_docs
def bench_scan_speed(n, workers, size, analyzers, engines, db, write_docs):
    """Images/s of `medaudit scan` on generated PNG and DICOM files, per engine."""
    names = None if analyzers == "all" else tuple(analyzers.split(","))
    _evaluate("scan_speed", write_docs, db, n=n, workers=workers, analyzers=names, size=size,
              engines=tuple(engines.split(",")))


@bench.command("watermark")
@_data_option()
@click.option("-n", "n", type=click.IntRange(1), default=100, show_default=True, help="Images per data set.")
@click.option("--sizes", default="64,128,native", show_default=True, help="Pixel sizes and/or 'native'.")
@click.option("--generators", "n_generated", type=click.IntRange(0), default=60, show_default=True,
              help="Also measure this many stamped outputs of each bundled generator (0: skip).")
@_bench_db
@_write_docs
def bench_watermark(data_dir, n, sizes, n_generated, db, write_docs):
    """Watermark detection rate and false positives on real images under JPEG, resizing, 16→8 bit …"""
    size_list = tuple(None if s == "native" else int(s) for s in sizes.split(","))
    _evaluate("watermark", write_docs, db, data=data_dir, n=n, sizes=size_list, n_generated=n_generated)


# --- bench run/leaderboard/speed (benchmark harness) ---------------------------------------------------------------
@bench.command("run")
@click.option("--profile", type=click.Choice(["quick", "full"]), default="quick", show_default=True)
@click.option("--full", "full", is_flag=True, help="Same as --profile full (bigger machines).")
@_data_option()
@click.option("--detector", "detectors", multiple=True,
              help="Registry name, entry-point name or module:Class; repeatable (default: all registered).")
@click.option("--generator", "generators", multiple=True, help="Generators for the fakes (default: all bundled).")
@click.option("--protocol", "protocols", multiple=True, help="Protocols to run (default: all).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Benchmark-set cache (default .cache/medaudit-bench).")
@_bench_db
@click.option("--speed/--no-speed", default=True, show_default=True, help="Also measure speed (docs section).")
@_write_docs
@click.option("--quiet", "-q", is_flag=True)
def bench_run(profile, full, data_dir, detectors, generators, protocols, cache, db, speed, write_docs, quiet):
    """Build the format-matched benchmark set, run every protocol for every detector, store the results."""
    import shlex

    from benchmarks import run as bench_runner

    profile = "full" if full else profile
    command = shlex.join(["medaudit", *sys.argv[1:]])
    run_id = bench_runner.run_benchmark(profile=profile, data_dir=data_dir, db=db, detectors=detectors or None,
                                        generators=generators or None, protocols=protocols or None, cache=cache,
                                        command=command, progress=not quiet)
    speed_md = None
    if speed:
        from benchmarks import speed as bench_speed

        prof = bench_runner.PROFILES[profile]
        rows, notes = bench_speed.run(detectors or bench_runner.DEFAULT_DETECTORS, prof["speed_sizes"],
                                      prof["speed_n"], progress=not quiet)
        speed_md = bench_speed.to_markdown(rows, notes, prof["speed_n"])
    if write_docs:
        bench_runner.write_docs(write_docs, db, run_id, command=command, speed_md=speed_md)
    from benchmarks.leaderboard import collect, render_leaderboard_md
    from benchmarks.store import ResultStore

    with ResultStore(db) as store:
        click.echo(render_leaderboard_md(collect(store, run_id)))
    if speed_md:
        click.echo("\n" + speed_md)
    click.echo(f"\nrun {run_id} stored in {db}", err=True)


@bench.command("leaderboard")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@_bench_db
@click.option("--run-id", default=None, help="Default: the latest finished `bench run`; any stored run by its id.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of stdout.")
def bench_leaderboard(fmt, db, run_id, output):
    """Render the leaderboard of a stored run (Markdown, or HTML with sortable tables and ROC plots)."""
    from benchmarks.leaderboard import collect, render_html, render_markdown
    from benchmarks.store import ResultStore

    if not db.is_file():
        raise click.UsageError(f"no results store at {db}; run `medaudit bench run` first")
    with ResultStore(db) as store:
        run_id = run_id or store.latest_run()
        if run_id is None:
            raise click.UsageError(f"no finished run in {db}")
        data = collect(store, run_id)
    text = render_html(data) if fmt == "html" else render_markdown(data)
    if output:
        from forensics.atomic import write_text

        write_text(output, text)
    else:
        click.echo(text)


@bench.command("speed")
@click.option("--detector", "detectors", multiple=True, help="Default: every registered detector.")
@click.option("--sizes", default="256,512", show_default=True)
@click.option("-n", "n", type=click.IntRange(1), default=8, show_default=True, help="Images per cell.")
@_bench_db
@_write_docs
@click.option("--quiet", "-q", is_flag=True)
def bench_speed_cmd(detectors, sizes, n, db, write_docs, quiet):
    """Images/s and peak memory per detector and for the whole suite, side by side."""
    _evaluate("speed", write_docs, db, detectors=detectors or None, sizes=tuple(int(s) for s in sizes.split(",")),
              n=n, progress=not quiet)


@bench.command("generators")
@_data_option()
@click.option("-n", "n", type=click.IntRange(2), default=200, show_default=True, help="Samples per model.")
@click.option("--models", default=None, help="Comma-separated bundled names or checkpoint dirs (default: all).")
@_bench_db
@_write_docs
def bench_generators(data_dir, n, models, db, write_docs):
    """Generator quality: Fréchet distance and KID on local features, precision/recall, diversity, memorization."""
    _evaluate("generators", write_docs, db, data=data_dir, n=n, models=tuple(models.split(",")) if models else None)


@train.command("detector")
@click.option("--real", "real", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of real images; repeatable.")
@click.option("--fake", "fake", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of synthetic images; repeatable. Without it, fakes are sampled from --generators.")
@click.option("--generators", "generator_names", default=None,
              help="Comma-separated bundled generators or checkpoint dirs to sample fakes from (default: all bundled).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for the weights, calibration, fusion.json and MODEL_CARD.md; use it with scan --weights.")
@click.option("--time-budget", "time_budget", type=click.FloatRange(1), default=None, help="Seconds for training.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train_detector_cmd(real, fake, generator_names, out, time_budget, seed, quiet):
    """Train the frequency and CNN detectors on real vs synthetic images, format-fair, with calibration.

    Both classes go through the same random format path (JPEG 50–100 or PNG, resizing, blur, noise, window/level,
    bit depth); real images also pass through each generator's resolution path as negatives; the split is by
    source image; calibration is fitted on validation data and stored as JSON beside the weights. With fakes from
    two or more generator families (several --fake folders, or generators of one modality from different
    families), calibration is fitted across them: refitted without each family in turn, so the `high` threshold
    holds for a generator never seen in training (one extra CNN fit per family).
    """
    from benchmarks.train_detector import train_detector_cli

    names = generator_names.split(",") if generator_names else None
    try:
        report = train_detector_cli(list(real), list(fake), names, out, seed=seed, time_budget_s=time_budget,
                                    progress=not quiet)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(report, indent=2, default=str))


@train.command("inpainter")
@_data_option("Real images: ct_lung_tcia/ and cxr_kermany/ below it.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for weights.safetensors and config.json (bundled: generators/weights/tamper_inpaint).")
@click.option("--time-budget", "time_budget", type=click.FloatRange(1), default=300.0, show_default=True,
              help="Seconds.")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True, help="torch CPU threads.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train_inpainter_cmd(data_dir, out, time_budget, threads, seed, quiet):
    """Train the in-painting network of `medaudit tamper remove` on 32 px patches of real chest CT and X-rays.

    Files the tamper, screen and localization benchmarks hold out (benchmarks.datasets.is_holdout) are skipped, so
    those benchmarks keep measuring unseen images.
    """
    from benchmarks.datasets import is_holdout
    from generators.tamper import train_inpainter

    try:
        cfg = train_inpainter(data_dir, out, holdout=is_holdout, time_budget_s=time_budget, threads=threads, seed=seed,
                              progress=not quiet)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(cfg, indent=2))


@train.command("modality")
@_data_option("Real images: cxr_kermany/, ct_lung_tcia/, derm_isic/, mri_brain/*.nii.gz, mammo/*.pgm below it.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for model.json and report.json (bundled: forensics/weights/modality).")
@click.option("--measure", "measure", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of images only to score, never to fit (e.g. modalities the model never saw); repeatable.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train_modality_cmd(data_dir, out, measure, seed, quiet):
    """Train the modality gate: names the modality of an image with no DICOM header (DX, CT, XC, MR, MG) or OT.

    Pixel detectors abstain on images it names MR, MG or OT. Held-out figures per class and the scores of the
    --measure folders go to report.json and stdout.
    """
    from forensics.modality_train import train_modality

    try:
        report = train_modality(data_dir, out, measure=list(measure), seed=seed, progress=not quiet)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(report, indent=2))


@bench.command("detectors")
@_data_option()
@click.option("--lofo-budget", type=click.FloatRange(0), default=450.0, show_default=True,
              help="Training seconds per leave-one-family-out fold, shared by its three CNN fits (0 skips them).")
@_bench_db
@_write_docs
def bench_detectors(data_dir, lofo_budget, db, write_docs):
    """Bundled pixel detectors: in-distribution, leave-one-family-out, perturbations, calibration, controls, speed."""
    _evaluate("detectors", write_docs, db, data=data_dir, lofo_budget=lofo_budget)


@bench.command("reuse")
@_data_option()
@click.option("--n-pos", type=click.IntRange(1), default=40, show_default=True,
              help="Transformed copies per transform and modality.")
@click.option("--write-thresholds", is_flag=True,
              help="Also replace the shipped thresholds (forensics/reuse/thresholds.json) with the calibrated ones.")
@_bench_db
@_write_docs
def bench_reuse(data_dir, n_pos, write_thresholds, db, write_docs):
    """Reuse index: recall per transform and false-match rate between different patients, per modality."""
    _evaluate("reuse", write_docs, db, data=data_dir, n_pos=n_pos, write_thresholds=write_thresholds)


@bench.command("screen")
@_data_option()
@click.option("--per-kind", type=click.IntRange(1), default=4, show_default=True,
              help="Claims of each kind (clean, original, reused, tampered, synthetic) per modality.")
@_bench_db
@_write_docs
def bench_screen(data_dir, per_kind, db, write_docs):
    """Claim screening end to end, locally and on dask: is each fraud flagged for the right cause?"""
    _evaluate("screen", write_docs, db, data=data_dir, per_kind=per_kind)


@bench.command("tamper")
@_data_option()
@click.option("-n", "n", type=click.IntRange(2), default=100, show_default=True,
              help="Held-out real images, half of each modality; one tampered copy each.")
@_bench_db
@_write_docs
def bench_tamper(data_dir, n, db, write_docs):
    """Localization analyzer on tampered (unstamped) vs untouched images: image- and pixel-level figures."""
    _evaluate("tamper", write_docs, db, data=data_dir, n=n)


# --- data --------------------------------------------------------------------------------------------------------


@main.group()
def data():
    """Real training data: verify a data folder and see where to obtain each dataset (nothing is downloaded)."""


@data.command("check")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def data_check(data_dir, fmt):
    """Verify DATA_DIR against each dataset's manifest.csv (names, sizes, SHA-256) and say where to obtain each.

    Exit 0 when every dataset present matches its manifest, 1 when any file is missing, changed or unlisted, or a
    dataset folder has no manifest.csv. A dataset that is absent is listed with its source and licence, not counted
    as a failure.
    """
    from forensics.writers import printable
    from generators.sources import check_data_dir

    checks = check_data_dir(data_dir)
    if fmt == "json":
        click.echo(json.dumps([c.to_dict() for c in checks], indent=1))
    else:
        for c in checks:
            click.echo(f"{c.folder + '/':<14} {c.status:<11} {c.files} files verified")
            for problem in c.problems[:20]:
                click.echo(f"    {printable(problem)}")
            if len(c.problems) > 20:
                click.echo(f"    ... and {len(c.problems) - 20} more")
            if c.source is not None:
                click.echo(f"    {c.source.what}; obtain from: {c.source.origin} ({c.source.licence})")
    sys.exit(1 if any(c.status in ("mismatch", "no_manifest") for c in checks) else 0)
