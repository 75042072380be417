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
# Levels outside LEVEL_ORDER: "unscored" (no pixel analyzer could assess the image; --fail-on-unscored) and, for a
# claim, "incomplete" (an image missing or unreadable; it reaches every --fail-on level). See docs/FORMATS.md.
UNSCORED, INCOMPLETE = "unscored", "incomplete"
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


def _trust_list(ctx, param, value):
    if not value:
        return None
    from forensics.signatures import load_trust_list

    try:
        return load_trust_list(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _watermark_key(ctx, param, value):
    """A secret read from the named file, else from $MEDAUDIT_WATERMARK_KEY; never taken on the command line."""
    from forensics.watermark import WatermarkKey

    try:
        return WatermarkKey.from_file(value) if value else WatermarkKey.from_env()
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None


_watermark_key_option = click.option(
    "--watermark-key", type=click.Path(exists=True, dir_okay=False), default=None, callback=_watermark_key,
    help="File holding a secret watermark key (default: $MEDAUDIT_WATERMARK_KEY, else the public mark).")


def _signing_options(func):
    """--sign-key / --sign-cert (generate, tamper): C2PA in PNG/JPEG, PS3.15 signatures in DICOM."""
    func = click.option("--sign-cert", type=click.Path(exists=True, dir_okay=False), default=None,
                        help="PEM certificate chain of --sign-key (signer first).")(func)
    return click.option("--sign-key", type=click.Path(exists=True, dir_okay=False), default=None,
                        help="PEM private key (EC P-256/384 or RSA): sign each output's provenance.")(func)


def _load_signing_key(sign_key, sign_cert):
    if not sign_key and not sign_cert:
        return None
    if not (sign_key and sign_cert):
        raise click.UsageError("--sign-key and --sign-cert go together")
    from forensics.signatures import load_signing_key

    try:
        return load_signing_key(sign_key, sign_cert)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _view_option(func):
    """--view-px: how large the report's per-image views are (audit, screen)."""
    return click.option("--view-px", type=click.IntRange(0, 8192), default=1024, show_default=True,
                        help="Longer side in px of the report's zoomable image and its views (ELA, noise, heatmaps); "
                             "0: none. The report grows with its square.")(func)


def _quiet_option(func):
    """-q/--quiet for a command with no progress setting of its own: progress bars (tqdm, read from TQDM_DISABLE) are
    off while it runs. Every command that can print progress takes -q."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, quiet: bool = False, **kwargs):
        import os

        before = os.environ.get("TQDM_DISABLE")
        if quiet:
            os.environ["TQDM_DISABLE"] = "1"
        try:
            return func(*args, **kwargs)
        finally:
            if before is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = before

    return click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")(wrapper)


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
        click.option("--fail-on-unscored", is_flag=True,
                     help="Exit 1 when any image (claim) is unscored: no pixel analyzer could assess it."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar on stderr."),
        click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                     help="Where to run: this machine's processes, or dask.distributed."),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler (tcp://host:8786); without it --engine dask starts a LocalCluster."),
        click.option("--trust-list", type=click.Path(exists=True, dir_okay=False), default=None,
                     callback=_trust_list, help="PEM certificates whose signatures (C2PA, DICOM) count as trusted."),
        _watermark_key_option,
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


def _exit_status(levels: list[str | None], errors: int, fail_on: str | None, fail_on_error: bool,
                 fail_on_unscored: bool = False) -> int:
    """1 when a level reaches --fail-on (an incomplete claim reaches every level), an unscored one with
    --fail-on-unscored, or an error with --fail-on-error; else 0."""
    if fail_on and any(lv == INCOMPLETE or LEVEL_ORDER.get(lv, -1) >= LEVEL_ORDER[fail_on] for lv in levels):
        return 1
    if fail_on_unscored and UNSCORED in levels:
        return 1
    return 1 if fail_on_error and errors else 0


def _require_inputs(paths) -> None:
    """Exit 2 (usage error) when PATHS hold nothing to scan: every path missing, every folder empty."""
    from forensics.inputs import nothing_to_scan
    from forensics.writers import printable

    why = nothing_to_scan(paths)
    if why is not None:
        raise click.UsageError(printable(why))


def _risk_text(risk: float | None) -> str:
    from forensics.writers import risk_text

    return risk_text(risk)


def _summary_line(levels: list[str | None], errors: int | None, what: str = "scanned") -> str:
    """``scanned N: a low, b medium, c high, d unscored, e error``; for claims (``errors`` None) the ``incomplete``
    count instead of errors."""
    counts = {lv: levels.count(lv) for lv in (*LEVEL_ORDER, UNSCORED)}
    if errors is None:
        counts[INCOMPLETE] = levels.count(INCOMPLETE)
    parts = [f"{n} {lv}" for lv, n in counts.items()] + ([] if errors is None else [f"{errors} error"])
    return f"{what} {len(levels) + (errors or 0)}: " + ", ".join(parts)


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
def scan(paths, fmt, output, resume, index_path, workers, fail_on, fail_on_error, fail_on_unscored, quiet, engine,
         scheduler, **opts):
    """Score each image in PATHS (files or folders, walked recursively) for deepfake risk.

    One JSON line per input on stdout (or -o FILE): risk, level, and the findings with their evidence.
    Files that cannot be scanned give an error record with a code; the run goes on.
    """
    from forensics.scanner import scan_paths
    from forensics.writers import ResultWriter

    _require_inputs(paths)
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
    sys.exit(_exit_status(levels, errors, fail_on, fail_on_error, fail_on_unscored))


# --- audit -----------------------------------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.html, report.json and report.csv.")
@click.option("--include-phi", is_flag=True, help="Show patient identifiers in the report (redacted by default).")
@_view_option
@_scan_options
def audit(paths, out_dir, include_phi, workers, fail_on, fail_on_error, fail_on_unscored, quiet, engine, scheduler,
          **opts):
    """Scan PATHS and write a self-contained audit report (HTML, JSON, CSV) into --out."""
    from forensics.audit import audit as run_audit

    _require_inputs(paths)
    options = _build_options(**opts, thumbnails=True, include_phi=include_phi)
    results, written = run_audit(paths, out_dir, options, workers=workers, progress=not quiet, engine=engine,
                                 scheduler=scheduler)
    levels = [r.level for r in results if r.status == "ok"]
    errors = sum(r.status == "error" for r in results)
    click.echo(_summary_line(levels, errors), err=True)
    for kind, path in written.items():
        click.echo(f"{kind}\t{path}")
    sys.exit(_exit_status(levels, errors, fail_on, fail_on_error, fail_on_unscored))


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
@_view_option
@_scan_options
def screen(claims_csv, out_dir, index_path, resume, include_phi, root, allow_outside, workers, fail_on, fail_on_error,
           fail_on_unscored, quiet, engine, scheduler, **opts):
    """Screen the claims in CLAIMS_CSV (columns claim_id, path): per-image records, per-claim summary, report.

    Every image is filed in the reuse index under its claim first, so the same scan attached to two claims is
    caught within the batch and against earlier ones. --fail-on applies to claims: exit 1 when any claim's highest
    risk reaches the level. Paths must lie under --root (default: the CSV's folder) unless --allow-outside.
    """
    import os

    from forensics.screening import read_claims, screen_claims
    from forensics.writers import printable

    try:
        items = read_claims(claims_csv)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not items:
        raise click.UsageError(f"nothing to screen: {printable(claims_csv)} has a header but no claim rows")
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
    for c in summaries:
        reasons = printable("; ".join(c["reasons"][:2]))
        click.echo(f"{c['level']:<10} {_risk_text(c['max_risk']):>5}  claim {printable(c['claim_id'])}: {reasons}",
                   err=True)
    levels = [c["level"] for c in summaries]
    if not quiet:
        click.echo(_summary_line(levels, None, what="claims"), err=True)
    for kind, path in written.items():
        click.echo(f"{kind}\t{path}")
    sys.exit(_exit_status(levels, sum(c["errors"] for c in summaries), fail_on, fail_on_error, fail_on_unscored))


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
@_quiet_option
def index_query(path, db, limit):
    """Images in the index that PATH is a copy of (flipped, rotated, cropped, re-encoded …), as JSON Lines.

    No match: nothing on stdout, "no match for PATH" on stderr, exit 0."""
    from forensics.reuse import query_path
    from forensics.writers import printable

    matches = list(query_path(db, path, limit=limit))
    for match in matches:
        click.echo(json.dumps(match))
    if not matches:  # stdout stays empty (no JSON lines), exit 0: "no match" is an answer, not an error
        click.echo(f"no match for {printable(path)} in {printable(db)}", err=True)


# --- inspect ---------------------------------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: indented lines per file; json: one JSON object per file (JSON Lines).")
@click.option("--include-phi", is_flag=True, help="Show patient identifiers, dates and instance UIDs (redacted by "
                                                  "default).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Per-file time limit in seconds (0: none).")
@_max_bytes_option()
@click.option("--quiet", "-q", is_flag=True, help="No summary line on stderr.")
def inspect(paths, fmt, include_phi, timeout_s, max_bytes, quiet):
    """List everything each file in PATHS says about itself: every DICOM element (private tags, nested sequences),
    PNG chunks, EXIF / XMP / IPTC / ICC, C2PA manifest, JPEG quantization tables and the encoder they point to,
    NIfTI header. Files that cannot be read give an error record; the run goes on. Files are never modified."""
    from forensics.inspect import inspect_paths, to_text

    total = errors = 0
    for record in inspect_paths(paths, include_phi=include_phi, max_bytes=max_bytes, timeout_s=timeout_s):
        total += 1
        errors += record["status"] != "ok"
        click.echo(json.dumps(record, default=str) if fmt == "json" else to_text(record) + "\n")
    if total == 0:
        click.echo("medaudit: nothing to inspect: no files under the given paths", err=True)
        sys.exit(2)
    if not quiet:
        click.echo(f"inspected {total}: {total - errors} ok, {errors} error", err=True)


# --- list ------------------------------------------------------------------------------------------------------


@main.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_quiet_option
def list_cmd(fmt):
    """Show the analyzers, bundled generators and fake makers, and whether each can run here, and why not."""
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
    rows = [{"type": "generator", "name": g["name"], "version": g.get("version", ""), "kind": g["family"],
             "available": True, "reason": ""} for g in list_bundled()]
    from generators.fakemakers import fake_maker, fake_maker_names

    for name in fake_maker_names():
        maker = fake_maker(name)
        ok = maker.available()
        rows.append({"type": "fake-maker", "name": name, "version": "1", "kind": maker.family, "available": ok,
                     "reason": "" if ok else "no weights (medaudit train fake-makers)"})
    return rows


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
        verdict = f"{r.level:<8} {_risk_text(r.risk)}" if r.status == "ok" else f"error    {r.error.code}"
        click.echo(f"{verdict:<28} {Path(r.path).relative_to(inputs)}", err=True)
    levels = [r.level for r in results if r.status == "ok"]
    click.echo(_summary_line(levels, sum(r.status == "error" for r in results)), err=True)
    click.echo(f"report\t{written['html']}")


# --- generators ------------------------------------------------------------------------------------------------


@main.command()
@click.argument("name_or_ckpt")
@click.option("-n", "n", type=click.IntRange(1), default=8, show_default=True, help="How many images.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--format", "fmt", type=click.Choice(["png", "png16", "jpeg", "dicom"]), default="png",
              show_default=True, help="8-bit PNG, 16-bit PNG, JPEG (quality 95), or a Secondary Capture DICOM.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:1 …")
@click.option("--quiet", "-q", is_flag=True)
@click.option("--max-similarity", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Privacy filter: discard samples whose nearest --reference image has NCC or perceptual-hash "
                   "similarity >= this (e.g. 0.95); keep sampling until N are kept or --max-attempts.")
@click.option("--reference", "reference", multiple=True, type=click.Path(exists=True),
              help="The images the model was trained on (folder; repeatable), for --max-similarity.")
@click.option("--max-attempts", type=click.IntRange(1), default=None, help="Filter cap on draws [default: 10 × N].")
@click.option("--class", "class_label", default=None,
              help="Class to draw, for a class-conditional generator (e.g. cxr_ldm: bacterial, viral).")
@click.option("--guidance", type=click.FloatRange(0), default=None,
              help="Classifier-free guidance scale with --class (1: none; the model's default otherwise).")
@_signing_options
@_watermark_key_option
def generate(name_or_ckpt, n, out_dir, fmt, seed, device, quiet, max_similarity, reference, max_attempts,
             class_label, guidance, sign_key, sign_cert, watermark_key):
    """Sample N synthetic images from a bundled generator (see `medaudit list`) or a checkpoint folder.

    Every image is stamped: an invisible watermark plus labels (PNG iTXt/XMP; DICOM Conversion Type SYN); with
    --sign-key/--sign-cert also signed provenance (C2PA manifest; DICOM Digital Signatures). OUT gets a
    labels.csv (file, class, generator, seed, guidance), merged with one already there. Prints the paths; with
    --max-similarity a last line of JSON {"privacy_filter": {drawn, kept, dropped, ...}}.
    """
    from generators import generate as sample_to_files

    if (max_similarity is None) != (not reference):
        raise click.UsageError("--max-similarity S needs --reference DIR (the images the model was trained on; "
                               "for the bundled models see docs/MODEL_CARDS.md), and --reference needs "
                               "--max-similarity")
    signing_key = _load_signing_key(sign_key, sign_cert)
    try:
        privacy = None
        if max_similarity is not None:
            from generators.privacy import filter_for

            privacy = filter_for(name_or_ckpt, list(reference), max_similarity, progress=not quiet)
        written = sample_to_files(name_or_ckpt, n, out_dir, fmt=fmt, seed=seed, device=device, progress=not quiet,
                                  signing_key=signing_key, watermark_key=watermark_key, privacy=privacy,
                                  max_attempts=max_attempts, class_label=class_label, guidance=guidance)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    for path in written:
        click.echo(str(path))
    if privacy is not None:
        s = privacy.summary()
        cap = "" if len(written) == n else f"; stopped at the cap of {s['drawn']} draws with {len(written)}/{n} kept"
        click.echo(f"privacy filter: dropped {s['dropped']} of {s['drawn']} samples ({s['dropped_ncc']} by NCC, "
                   f"{s['dropped_hash_only']} by hash only) at similarity >= {max_similarity}{cap}", err=True)
        click.echo(json.dumps({"privacy_filter": {**s, "requested": n}}))


def _xy(text: str, hint: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter("expected X,Y, e.g. 200,180", param_hint=hint) from None
    return x, y


@main.command()
@click.argument("method", required=False)
@click.argument("image", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--list", "list_methods", is_flag=True,
              help="Print the tamper methods (name, kind, held_out, modalities, needs_donor, summary), one JSON "
                   "line each, and exit.")
@click.option("--at", "at", metavar="X,Y", help="Centre of the lesion in pixels (column,row).")
@click.option("--radius", type=click.FloatRange(1), default=None, help="Lesion radius in pixels (default: by size).")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="PNG, or DICOM (.dcm, from DICOM input) keeping the original's metadata.")
@click.option("--modality", type=click.Choice(["ct", "xray", "mri", "mammo"]), default=None,
              help="Lesion prior to use (default: from the DICOM modality, mri for NIfTI, else ct or xray guessed).")
@click.option("--donor", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Another patient's image to take the lesion from (paste_* methods).")
@click.option("--donor-at", "donor_at", metavar="X,Y", default=None, help="Centre of the lesion in the donor image.")
@click.option("--donor-radius", "donor_radius", type=click.FloatRange(1), default=None,
              help="Radius of the donor lesion (default: --radius; the lesion is scaled to --radius).")
@click.option("--mask", "mask_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the mask of changed pixels (PNG 0/255; default: OUT's stem + .mask.png).")
@click.option("--no-stamp", is_flag=True, help="Leave the output unlabelled (benchmarks only).")
@click.option("--seed", type=int, default=0, show_default=True)
@_signing_options
@_watermark_key_option
@_quiet_option
def tamper(method, image, list_methods, at, radius, out, modality, donor, donor_at, donor_radius, mask_path,
           no_stamp, seed, sign_key, sign_cert, watermark_key):
    """Apply tamper METHOD to IMAGE: inject a lesion or remove one (a 2-D CT-GAN attack) on CT, chest X-ray, brain
    MRI or mammography, and write the mask of changed pixels beside the output.

    METHOD: inject, remove, or any other registered method (`medaudit tamper --list`): e.g. inject_ae (decoder-made
    in-painting), paste_poisson (a lesion from --donor), remove_telea (classic in-painting). The output is stamped
    as manipulated (watermark, compositeWithTrainedAlgorithmicMedia, DICOM DERIVED with the medaudit private block)
    unless --no-stamp: the realistic fraud case, for testing detectors.
    """
    from generators.tamper import tamper_file, tamper_method, tamper_methods

    if list_methods:
        for name in tamper_methods():
            click.echo(json.dumps(tamper_method(name).to_dict()))
        return
    if method is None or image is None:
        raise click.UsageError("give METHOD and IMAGE (or --list)")
    for value, hint in ((at, "--at"), (out, "--out")):
        if value is None:
            raise click.UsageError(f"missing option {hint}")
    try:
        tamper_method(method)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="METHOD") from None
    from forensics.errors import InputError
    from forensics.io import load
    from forensics.writers import printable

    if donor is not None:
        try:
            donor = load(donor)
        except InputError as exc:
            raise click.UsageError(f"cannot read the donor {printable(donor)}: {exc.code}: "
                                   f"{printable(exc.message)}") from None
    try:
        info = tamper_file(image, out, method, at=_xy(at, "--at"), radius=radius, stamp=not no_stamp, seed=seed,
                           modality=modality, signing_key=_load_signing_key(sign_key, sign_cert),
                           watermark_key=watermark_key, donor=donor,
                           donor_at=None if donor_at is None else _xy(donor_at, "--donor-at"),
                           donor_radius=donor_radius, mask_path=mask_path or "auto")
    except InputError as exc:  # not an image, truncated, ...: the input's fault, not a failed run
        raise click.UsageError(f"cannot tamper {printable(image)}: {exc.code}: {printable(exc.message)}") from None
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(info, default=str))


@main.group()
def train():
    """Train generators or detectors on your own folders."""


@train.command("generator")
@click.argument("family", type=click.Choice(["gan", "vae", "ddpm", "ldm"]))
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True),
              help="Folder (or DICOM series) of training images; repeatable.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Checkpoint folder (weights.safetensors + config.json); an existing one is resumed.")
@click.option("--resolution", type=click.Choice(["32", "64", "128", "256"]), default="64", show_default=True,
              help="Training and output side in pixels (ldm: 256).")
@click.option("--max-steps", type=click.IntRange(1), default=None)
@click.option("--time-budget", "time_budget", type=click.FloatRange(0), default=None, help="Seconds.")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV with file and class columns: each image's class (counts are reported).")
@click.option("--quiet", "-q", is_flag=True)
def train_generator_cmd(family, data, out, resolution, max_steps, time_budget, batch_size, device, seed, labels,
                        quiet):
    """Train a FAMILY generator on --data; writes sample grids and a resumable checkpoint to --out."""
    from generators import train_generator

    if max_steps is None and time_budget is None:
        raise click.UsageError("give --max-steps or --time-budget (or both)")
    try:
        ckpt = train_generator(family, list(data), out, resolution=int(resolution), max_steps=max_steps,
                               time_budget_s=time_budget, device=device, seed=seed, batch_size=batch_size,
                               progress=not quiet, dataset_kwargs={"labels": labels} if labels else None)
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
EXTERNAL_ENV = "MEDAUDIT_EXTERNAL"  # third-party sets, for validation only
#: The five data folders the pixel detectors and their benchmarks read (as benchmarks.datafiles.DATA_FOLDERS says).
_ALL_FOLDERS = "cxr_kermany/, ct_lung_tcia/, derm_isic/, mri_brain/*.nii.gz, mammo/*.pgm"
_DATA_FOLDERS = f"a folder with {_ALL_FOLDERS} or any of them"


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
    run_id, sections = run_evaluation(name, db=db, command=command, **params)
    for section in sections if isinstance(sections, list) else [sections]:  # one section, or one per subject
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
@_quiet_option
def bench_scan_speed(n, workers, size, analyzers, engines, db, write_docs):
    """Images/s of `medaudit scan` on generated PNG and DICOM files, per engine."""
    names = None if analyzers == "all" else tuple(analyzers.split(","))
    _evaluate("scan_speed", write_docs, db, n=n, workers=workers, analyzers=names, size=size,
              engines=tuple(engines.split(",")))


@bench.command("cold-start")
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True, help="Fresh processes per command.")
@_bench_db
@_write_docs
@_quiet_option
def bench_cold_start(repeats, db, write_docs):
    """Seconds of a one-image `scan` and `inspect` in a new process, as a ratio to `python -c "import torch"`."""
    _evaluate("cold_start", write_docs, db, repeats=repeats)


@bench.command("reader")
@click.option("-n", "n", type=click.IntRange(2), default=50, show_default=True, help="Images in the study.")
@click.option("--size", type=click.IntRange(16, 4096), default=512, show_default=True)
@click.option("--browser/--no-browser", default=True, show_default=True,
              help="Also time the page in headless Chromium (when installed).")
@_bench_db
@_write_docs
@_quiet_option
def bench_reader(n, size, browser, db, write_docs):
    """Reader-study page: milliseconds from an answer to the next image shown, over HTTP and in Chromium."""
    _evaluate("reader", write_docs, db, n=n, size=size, browser=browser)


@bench.command("privacy")
@_data_option()
@click.option("-n", "n", type=click.IntRange(1), default=200, show_default=True, help="Samples per generator.")
@click.option("--models", default=None, help="Comma-separated generator names or checkpoint dirs [default: bundled].")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True,
              help="Near-copy NCC and the filter's --max-similarity.")
@_bench_db
@_write_docs
@_quiet_option
def bench_privacy(data_dir, n, models, threshold, db, write_docs):
    """Memorization: samples' nearest training image (NCC) vs the real-vs-real floor, near copies, filter drops."""
    _evaluate("privacy", write_docs, db, data=data_dir, n=n, threshold=threshold,
              models=tuple(models.split(",")) if models else None)


def _task_generators(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    from benchmarks.utility_eval import DEFAULT_GENERATORS, TASKS

    out = dict(DEFAULT_GENERATORS)
    for spec in value:
        task, sep, name = spec.partition("=")
        if not sep or task not in TASKS or not name:
            raise click.BadParameter(f"{spec!r}: give TASK=NAME with TASK one of {', '.join(TASKS)}", ctx, param)
        out[task] = name
    return out


@bench.command("utility")
@_data_option("Real images: cxr_kermany/, derm_isic/, mammo/ below it.")
@click.option("--generator", "generators", multiple=True, callback=_task_generators,
              help="TASK=NAME: the class-conditional generator (bundled name or checkpoint dir) of a task; "
                   "repeatable [default: cxr=cxr_ldm, derm=derm_ldm, mammo=mammo_ldm]. A task whose generator is "
                   "missing or unconditional is reported as not measured.")
@click.option("--tasks", default="cxr,derm,mammo", show_default=True, help="Comma-separated: cxr, derm, mammo.")
@click.option("--size", type=click.IntRange(16, 512), default=64, show_default=True, help="Classifier input side.")
@click.option("--steps", type=click.IntRange(1), default=200, show_default=True,
              help="Training steps per condition (the same for every condition).")
@click.option("--batch", type=click.IntRange(2), default=32, show_default=True)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated training seeds (AUC is their mean).")
@click.option("--n-boot", type=click.IntRange(1), default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance [default: the generator's].")
@click.option("--sampling-steps", type=click.IntRange(1), default=None,
              help="DDIM steps of the synthetic images [default: the generator's].")
@click.option("--max-real", type=click.IntRange(2), default=None,
              help="Cap each task's real training images (a fixed class-stratified subsample).")
@click.option("--max-synthetic", type=click.IntRange(0), default=None,
              help="Conditions needing more synthetic images per task are reported as not measured.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".cache/medaudit-bench/utility"), show_default=True,
              help="Generated images, kept between runs (keyed by the generator's weights hash).")
@click.option("--folds", type=click.IntRange(2), default=None,
              help="K-fold cross-validation over patients instead of the held-out split; each task's generator "
                   "is then a path with {fold} in it, a model trained without that fold "
                   "(python -m generators.train_bundled --fold K/N).")
@click.option("--generate-only", is_flag=True, help="Only fill the cache with the synthetic images the run needs.")
@_bench_db
@_write_docs
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def bench_utility(data_dir, generators, tasks, size, steps, batch, seeds, n_boot, guidance, sampling_steps, max_real,
                  max_synthetic, cache, folds, generate_only, db, write_docs, quiet):
    """Synthetic data utility: classifier AUC on held-out real images, trained on real, synthetic and mixes."""
    _evaluate("utility", write_docs, db, data=data_dir, generators=generators, tasks=tuple(tasks.split(",")),
              size=size, steps=steps, batch=batch, seeds=tuple(int(s) for s in seeds.split(",")), n_boot=n_boot,
              guidance=guidance, sampling_steps=sampling_steps, max_real=max_real, max_synthetic=max_synthetic,
              cache=cache, folds=folds, generate_only=generate_only, progress=not quiet)


@bench.command("watermark")
@_data_option()
@click.option("-n", "n", type=click.IntRange(1), default=100, show_default=True, help="Images per data set.")
@click.option("--sizes", default="64,128,native", show_default=True, help="Pixel sizes and/or 'native'.")
@click.option("--generators", "n_generated", type=click.IntRange(0), default=60, show_default=True,
              help="Also measure this many stamped outputs of each bundled generator (0: skip).")
@_bench_db
@_write_docs
@_quiet_option
def bench_watermark(data_dir, n, sizes, n_generated, db, write_docs):
    """Watermark detection rate and false positives on real images under JPEG, resizing, 16→8 bit …"""
    size_list = tuple(None if s == "native" else int(s) for s in sizes.split(","))
    _evaluate("watermark", write_docs, db, data=data_dir, n=n, sizes=size_list, n_generated=n_generated)


# --- bench run/leaderboard/speed (benchmark harness) ---------------------------------------------------------------
@bench.command("run")
@click.option("--profile", type=click.Choice(["quick", "full"]), default="quick", show_default=True)
@click.option("--full", "full", is_flag=True, help="Same as --profile full (bigger machines).")
@_data_option(f"Real images: {_ALL_FOLDERS} below it (any of them; a volume counts as its axial slices).")
@click.option("--detector", "detectors", multiple=True,
              help="Registry name, entry-point name or module:Class; repeatable (default: all registered).")
@click.option("--generator", "generators", multiple=True, help="Generators for the fakes (default: all bundled).")
@click.option("--protocol", "protocols", multiple=True, help="Protocols to run (default: all).")
@click.option("--external", "external", type=click.Path(exists=True, file_okay=False, path_type=Path),
              envvar=EXTERNAL_ENV, default=None,
              help="Third-party sets for the third_party protocol (validation only; without it that protocol is "
                   f"skipped) [env var: {EXTERNAL_ENV}]")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Benchmark-set cache (default .cache/medaudit-bench).")
@_bench_db
@click.option("--speed/--no-speed", default=True, show_default=True, help="Also measure speed (docs section).")
@_write_docs
@click.option("--quiet", "-q", is_flag=True)
def bench_run(profile, full, data_dir, detectors, generators, protocols, external, cache, db, speed, write_docs,
              quiet):
    """Build the format-matched benchmark set, run every protocol for every detector, store the results."""
    import shlex

    from benchmarks import run as bench_runner

    profile = "full" if full else profile
    command = shlex.join(["medaudit", *sys.argv[1:]])
    run_id = bench_runner.run_benchmark(profile=profile, data_dir=data_dir, db=db, detectors=detectors or None,
                                        generators=generators or None, protocols=protocols or None, cache=cache,
                                        command=command, progress=not quiet, external=external)
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
@_quiet_option
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
@_quiet_option
def bench_generators(data_dir, n, models, db, write_docs):
    """Generator quality: Fréchet distance and KID on local features, precision/recall, diversity, memorization."""
    _evaluate("generators", write_docs, db, data=data_dir, n=n, models=tuple(models.split(",")) if models else None)


def _weights_option(func):
    return click.option("--weights", "weights_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                        default=None, help="Detectors trained by `medaudit train detector` (default: the shipped "
                                           "ones).")(func)


def _control_options(func):
    func = click.option("--n-control", type=click.IntRange(1), default=20, show_default=True,
                        help="Held-out real images per data folder put through every resampling control (slices "
                             "of held-out volumes for mri_brain/).")(func)
    func = click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
                        help="Scanning processes.")(func)
    return click.option("--n-boot", type=click.IntRange(0), default=1000, show_default=True,
                        help="Bootstrap replicates of every interval.")(func)


def _require_external(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    if value is None:
        raise click.UsageError(f"no external folder: give --external DIR or set {EXTERNAL_ENV} (a folder with "
                               "synthetic/<set>/ and real/<set>/, each with a manifest.csv)", ctx=ctx)
    return value


@bench.command("third-party")
@click.option("--external", "external", type=click.Path(exists=True, file_okay=False, path_type=Path),
              envvar=EXTERNAL_ENV, default=None, callback=_require_external,
              help=f"Third-party synthetic and real sets (validation only, never trained on) [env var: "
                   f"{EXTERNAL_ENV}; required]")
@_data_option(f"Real images for the resampling controls (held-out files of {_ALL_FOLDERS}).")
@_weights_option
@_control_options
@_bench_db
@_write_docs
@click.option("--quiet", "-q", is_flag=True)
def bench_third_party(external, data_dir, weights_dir, n_control, workers, n_boot, db, write_docs, quiet):
    """Third-party generators' images vs their real counterparts, scored as `medaudit scan` scores, beside the
    resampling controls (real images through 13 kernels x 4 scales and JPEG 50-95)."""
    _evaluate("third_party", write_docs, db, external=external, data=data_dir, weights=weights_dir,
              n_control=n_control, workers=workers, n_boot=n_boot, progress=not quiet)


@bench.command("resampling")
@_data_option(f"Real images (held-out files of {_ALL_FOLDERS}).")
@_weights_option
@_control_options
@_bench_db
@_write_docs
@click.option("--quiet", "-q", is_flag=True)
def bench_resampling(data_dir, weights_dir, n_control, workers, n_boot, db, write_docs, quiet):
    """Share of real images reaching `medium` after each resampling kernel x scale and JPEG re-encode."""
    _evaluate("resampling_controls", write_docs, db, data=data_dir, weights=weights_dir, n_control=n_control,
              workers=workers, n_boot=n_boot, progress=not quiet)


@train.command("detector")
@click.option("--real", "real", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of real images; repeatable.")
@click.option("--fake", "fake", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of synthetic images; repeatable. Without it, fakes are sampled from --generators.")
@click.option("--generators", "generator_names", default=None,
              help="Comma-separated bundled generators or checkpoint dirs to sample fakes from (default: all bundled).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for the weights, calibration, fusion.json and MODEL_CARD.md; use it with scan --weights.")
@click.option("--fake-makers", "fake_makers", default="none", show_default=True,
              help="Fake makers that re-synthesize every real image as an aligned fake: comma-separated names, 'all' "
                   "(every bundled one) or 'none'. Off by default: trained on them, the detectors learned that a "
                   "smooth image is synthetic and flagged resized real ones (docs/BENCHMARKS.md).")
@click.option("--time-budget", "time_budget", type=click.FloatRange(1), default=None, help="Seconds for training.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train_detector_cmd(real, fake, generator_names, fake_makers, out, time_budget, seed, quiet):
    """Train the frequency and CNN detectors on real vs synthetic images, format-fair, with calibration.

    Both classes go through the same random format path (JPEG 50–100 or PNG, resizing, blur, noise, window/level,
    bit depth, resampling kernels of several libraries); real images also pass through each generator's resolution
    path as negatives; with --fake-makers, every real image is also re-synthesized by fake makers (autoencoders with
    several upsamplers and latent strides, local in-painting) as an aligned fake; the split is by
    source image; calibration is fitted on validation data and stored as JSON beside the weights. With fakes from
    two or more generator families (several --fake folders, or generators of one modality from different
    families), calibration is fitted across them: refitted without each family in turn, so the `high` threshold
    holds for a generator never seen in training (one extra CNN fit per family).
    """
    from benchmarks.train_detector import train_detector_cli

    names = generator_names.split(",") if generator_names else None
    makers = {"all": None, "none": ()}.get(fake_makers, fake_makers.split(","))
    try:
        report = train_detector_cli(list(real), list(fake), names, out, seed=seed, time_budget_s=time_budget,
                                    fake_makers=makers, progress=not quiet)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(report, indent=2, default=str))


@train.command("fake-makers")
@_data_option(f"Real images to train on: {_ALL_FOLDERS} below it (held-out files excluded).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for <maker>.safetensors; generators/weights/fakemakers holds the bundled ones.")
@click.option("--seconds-each", type=click.FloatRange(1), default=150.0, show_default=True,
              help="Training time per autoencoder (CPU, one thread).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train_fake_makers_cmd(data_dir, out, seconds_each, seed, quiet):
    """Train the autoencoder fake makers (four upsamplers, latent strides 4-16) that `train detector` uses to
    re-synthesize real images as aligned fakes."""
    import torch

    from benchmarks.train_detector import train_fake_makers

    torch.set_num_threads(1)  # small networks: one thread is faster than two fighting over a shared machine
    logs = train_fake_makers(data_dir, out, seconds_each=seconds_each, seed=seed, progress=not quiet)
    click.echo(json.dumps(logs, indent=2))


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


@train.command("residual")
@_data_option()
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Weights folder: writes residual/model.json there; use it with scan --weights.")
@click.option("--draws", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Random format-path variants per fitting image (calibration images get twice as many).")
@click.option("--estimator", type=click.Choice(["ledoit_wolf", "mcd"]), default="ledoit_wolf", show_default=True,
              help="Covariance of the one-class model: shrunk (Ledoit-Wolf) or robust (min. covariance determinant).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train_residual_cmd(data_dir, out, draws, estimator, seed, quiet):
    """Fit the residual analyzer on REAL images only: one model of fine-detail statistics per modality.

    No fakes are used: the score is calibrated on held-out real images through the shared format path, so at
    most 1% of them reach 0.5. The detectors' held-out split (benchmarks.datafiles.is_heldout) is never read.
    """
    from benchmarks.train_residual import train_residual

    try:
        summary = train_residual(data_dir, Path(out), draws=draws, calibration_draws=2 * draws, estimator=estimator,
                                 seed=seed, progress=not quiet)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(summary, indent=2))


@train.command("modality")
@_data_option(f"Real images: {_ALL_FOLDERS} below it.")
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
@_data_option(f"Real images: {_ALL_FOLDERS} below it.")
@click.option("--lofo-budget", type=click.FloatRange(0), default=450.0, show_default=True,
              help="Training seconds per leave-one-family-out fold, shared by its three CNN fits (0 skips them).")
@_bench_db
@_write_docs
@_quiet_option
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
@_quiet_option
def bench_reuse(data_dir, n_pos, write_thresholds, db, write_docs):
    """Reuse index: recall per transform and false-match rate between different patients, per modality."""
    _evaluate("reuse", write_docs, db, data=data_dir, n_pos=n_pos, write_thresholds=write_thresholds)


@bench.command("screen")
@_data_option()
@click.option("--per-kind", type=click.IntRange(1), default=4, show_default=True,
              help="Claims of each kind (clean, original, reused, tampered, synthetic) per modality.")
@_bench_db
@_write_docs
@_quiet_option
def bench_screen(data_dir, per_kind, db, write_docs):
    """Claim screening end to end, locally and on dask: is each fraud flagged for the right cause?"""
    _evaluate("screen", write_docs, db, data=data_dir, per_kind=per_kind)


@bench.command("tamper")
@_data_option("Real scans: ct_lung_tcia/, cxr_kermany/, mri_brain/*.nii.gz, mammo/*.pgm below it (any of them).")
@click.option("-n", "n", type=click.IntRange(1), default=8, show_default=True,
              help="Held-out real scans per modality; each gets one tampered copy per tamper method for it.")
@click.option("--method", "methods", multiple=True, help="Localization method(s) to measure (default: all).")
@_bench_db
@_write_docs
@_quiet_option
def bench_tamper(data_dir, n, methods, db, write_docs):
    """Localization analyzer per tamper method and modality, seen vs unseen methods, against untouched scans and
    their shortcut controls (resized, JPEG, denoised): image AUC, TPR at 1% FPR, pixel AUC, IoU, hit."""
    _evaluate("tamper", write_docs, db, data=data_dir, n=n, methods=tuple(methods) or None)


@bench.command("series")
@_data_option("Brain MRI volumes: mri_brain/*.nii.gz below it (each written as a DICOM series).")
@click.option("-n", "n", type=click.IntRange(1), default=None, help="IXI volumes to use (default: all).")
@_bench_db
@_write_docs
@_quiet_option
def bench_series(data_dir, n, db, write_docs):
    """Series consistency: one tampered slice per tamper method in DICOM series made from real MRI volumes."""
    _evaluate("series", write_docs, db, data=data_dir, n=n)


# --- data --------------------------------------------------------------------------------------------------------


@main.group()
def data():
    """Real training data: verify a data folder and see where to obtain each dataset (nothing is downloaded)."""


@data.command("check")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_quiet_option
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


# --- reader studies ------------------------------------------------------------------------------------------------


@main.group()
def reader():
    """Reader studies: people tell real from synthetic images, scored beside the detectors; a training mode."""


@reader.command("new")
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--real", "real", type=click.Path(exists=True, file_okay=False), required=True,
              help="Folder of real images (DICOM, NIfTI, PNG, JPEG ...).")
@click.option("--synthetic", "synthetic", type=click.Path(exists=True, file_okay=False), required=True,
              help="Folder of synthetic images.")
@click.option("--tampered", "tampered", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of tampered (edited) real images; adds the answer 'tampered'.")
@click.option("-n", "n", type=click.IntRange(2), required=True, help="Images in the study, split evenly by class.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which files are picked.")
@click.option("--size", type=click.IntRange(0, 4096), default=512, show_default=True,
              help="Longer side of every displayed image (0: native; sizes would then give fakes away).")
@click.option("--analyzers", default=None, metavar="NAMES", help="Detector analyzers (default: the default set).")
@click.option("--name", default=None, help="Title shown to the owner (default: the file name).")
@click.option("--quiet", "-q", is_flag=True)
def reader_new(study, real, synthetic, tampered, n, seed, size, analyzers, name, quiet):
    """Make STUDY (a new SQLite file): pick N files, convert them for display (pixels only, window/level kept,
    identifiers and names gone), store each with its truth and the detector suite's verdict. Prints a JSON summary;
    files that cannot be read are listed with their error codes and replaced by others of their class."""
    from benchmarks.reader.build import build_study

    folders = {"real": real, "synthetic": synthetic, **({"tampered": tampered} if tampered else {})}
    names = [a.strip() for a in analyzers.split(",") if a.strip()] if analyzers else None
    try:
        report = build_study(study, folders, n, seed=seed, name=name, size=size, analyzers=names, progress=not quiet)
    except (FileExistsError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(report.to_dict()))


def _open_study(path: Path):
    from benchmarks.reader.store import Study

    try:
        return Study(path)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None


@reader.command("invite")
@click.argument("study", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("name")
@click.option("--mode", type=click.Choice(["blinded", "teaching", "unprompted"]), default="blinded", show_default=True,
              help="blinded: told fakes are present, no feedback; teaching: truth and the detector's evidence after "
                   "each answer; unprompted: an ordinary-looking review that never mentions synthetic images.")
@_quiet_option
def reader_invite(study, name, mode):
    """Add reader NAME to STUDY with their own random order; prints their access token and link path as JSON (the
    token is shown once: only its hash is stored)."""
    with _open_study(study) as s:
        try:
            person, token = s.add_reader(name, mode)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(json.dumps({"reader": person.name, "mode": person.mode, "token": token, "path": f"/r/{token}"}))


@reader.command("serve")
@click.argument("study", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--demo", is_flag=True, help="Serve the bundled demo study (built on first use) with a new teaching "
                                           "reader.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but localhost exposes the study to the network (use TLS in front).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port.")
@click.option("--quiet", "-q", is_flag=True, help="No request log on stderr.")
def reader_serve(study, demo, host, port, quiet):
    """Serve the reading page for STUDY. Prints one JSON line: the base URL, the owner's results link (new each
    start), and with --demo a reader link. Readers open their own /r/TOKEN link; Ctrl-C stops."""
    from benchmarks.reader.app import create_app, make_server

    if demo == (study is not None):
        raise click.UsageError("give a STUDY or --demo")
    info = {}
    if demo:
        from benchmarks.reader.build import demo_study

        study = demo_study(progress=not quiet)
        with _open_study(study) as s:
            person, token = s.add_reader(f"demo-{len(s.readers()) + 1}", "teaching")
        info["reader_path"] = f"/r/{token}"
    _open_study(study).close()
    app = create_app(study)
    server = make_server(app, host, port, log=not quiet)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{server.server_port}"
    out = {"url": url, "study": str(study), "owner": f"{url}/o/{app.config['OWNER_TOKEN']}"}
    if "reader_path" in info:
        out["reader"] = url + info["reader_path"]
    click.echo(json.dumps(out))
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@reader.command("results")
@click.argument("study", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True,
              help="json: every figure; csv: one row per reader (and the detector).")
@click.option("--answers", is_flag=True, help="CSV of every answer instead (reader, image, truth, answer, ...).")
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results page to this file.")
@_quiet_option
def reader_results(study, fmt, answers, html):
    """Per-reader accuracy, sensitivity, specificity, AUC from confidence and time; Fleiss' kappa; the detector on
    the same images; the images that fooled most readers. Machine-readable on stdout."""
    from benchmarks.reader import report

    with _open_study(study) as s:
        if answers:
            click.echo(report.answers_csv(s), nl=False)
            return
        results = report.results_of(s)
    if html:
        from forensics.atomic import write_text

        write_text(html, report.results_html(results))
    click.echo(json.dumps(results, indent=1) if fmt == "json" else report.readers_csv(results), nl=fmt == "json")
