"""Mutation fuzzing (hypothesis) of the loaders, the whole scan and the metadata parsers.

Seeds and mutators live in benchmarks/fuzz.py, which also runs the long campaign (`make fuzz`). Here the example
counts are sized for CI (about 15 s in all); a failure prints the seed name and the mutation tuples, which replay
with ``benchmarks.fuzz.mutate(seed_files()[name][0], ops)``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz import (
    MUTATIONS,
    check_index,
    check_load,
    check_parsers,
    check_scan,
    fuzz,
    mutate,
    pathological_cases,
    seed_files,
)

SEEDS = sorted(seed_files())
OPS = st.lists(
    st.tuples(st.integers(0, len(MUTATIONS) - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    min_size=1,
    max_size=4,
)
CI = settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scanner():
    from forensics.scanner import Scanner, ScanOptions

    return Scanner(ScanOptions(timeout_s=20.0))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _write(workdir, name: str, ops) -> tuple[str, bytes]:
    data, suffix = seed_files()[name]
    mutated = mutate(data, ops, [seed_files()[n][0] for n in SEEDS])
    path = os.path.join(workdir, "input" + suffix)
    with open(path, "wb") as fh:
        fh.write(mutated)
    return path, mutated


def test_every_seed_loads_and_scans_cleanly(scanner):
    """The seeds themselves are good files: otherwise the fuzzer only explores the first error path."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name in SEEDS:
            path, _ = _write(tmp, name, [])
            assert check_load(path) is None, name
            result = scanner.scan_file(path)
            assert result.status == "ok", (name, result.error)


def test_seed_metadata_is_seen(scanner, tmp_path):
    """The metadata seeds really exercise the parsers: their signatures come out as evidence."""
    codes = {}
    for name in ("png_text", "jpeg_meta"):
        path, _ = _write(tmp_path, name, [])
        codes[name] = {e.code for f in scanner.scan_file(path).findings for e in f.evidence}
    assert "c2pa.manifest" in codes["png_text"] and "c2pa.manifest" in codes["jpeg_meta"], codes
    assert any(c.startswith("png.") for c in codes["png_text"]), codes


@CI
@given(name=st.sampled_from(SEEDS), ops=OPS)
def test_load_never_raises_anything_but_input_error(workdir, name, ops):
    path, _ = _write(workdir, name, ops)
    assert check_load(path) is None, (name, ops)


@pytest.mark.slow
@CI
@given(name=st.sampled_from(SEEDS), ops=OPS)
def test_scan_file_gives_a_clean_record(workdir, scanner, name, ops):
    path, _ = _write(workdir, name, ops)
    assert check_scan(scanner, path) is None, (name, ops)


@CI
@given(name=st.sampled_from(SEEDS), ops=OPS)
def test_filing_in_the_reuse_index_gives_a_count_or_a_clean_record(workdir, name, ops):
    """What `index add` and `screen` do first with each file: never an exception, never internal_error."""
    path, _ = _write(workdir, name, ops)
    assert check_index(os.path.join(workdir, "reuse.sqlite"), path, f"claim-{len(ops)}") is None, (name, ops)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["index", "screen"])
def test_the_fuzz_loop_drives_index_add_and_screen(target):
    """The campaign's own loop (python -m benchmarks.fuzz --target ...) runs each target without a crash."""
    stats = fuzz(3.0, seed=5, target=target, log=lambda _: None)
    assert stats["inputs"] > 0 and stats["crashes"] == 0, stats["unique"]
    assert stats["target"] == target and stats["peak_rss_mb"] > 0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.sampled_from(SEEDS), ops=OPS)
def test_metadata_parsers_never_raise(name, ops):
    mutated = mutate(seed_files()[name][0], ops, [seed_files()[n][0] for n in SEEDS])
    assert check_parsers(mutated) is None, (name, ops)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.binary(max_size=2048), head=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00",
                                                             b"RIFF\x00\x01\x00\x00WEBP", b"\x00" * 128 + b"DICM"]))
def test_random_bytes_behind_a_magic_never_crash(tmp_path_factory, data, head):
    """Arbitrary bytes after each format's magic: load() and the parsers answer with a code, never a traceback."""
    path = os.path.join(tmp_path_factory.getbasetemp(), "random.dcm")
    with open(path, "wb") as fh:
        fh.write(head + data)
    assert check_load(path) is None
    assert check_parsers(head + data) is None


# Regression inputs found while fuzzing and building the corpus (each was a crash or a wrong code once).
def test_regression_dicom_preamble_then_nothing_is_truncated(tmp_path):
    from forensics.errors import InputError
    from forensics.io import load

    path = tmp_path / "cut.dcm"
    for data in (b"\x00" * 128 + b"DICM", seed_files()["dicom_ct"][0][:140], seed_files()["dicom_ct"][0][:200]):
        path.write_bytes(data)
        with pytest.raises(InputError) as info:
            load(path)
        assert info.value.code == "truncated", (len(data), info.value.message)


# --------------------------------------------------------------------------------------------- hostile DICOM headers

_HEADER_FIELDS = {
    "StudyDate": "DA", "SeriesDate": "DA", "AcquisitionDate": "DA", "ContentDate": "DA", "StudyTime": "TM",
    "AcquisitionDateTime": "DT", "ImageType": "CS", "ConversionType": "CS", "Manufacturer": "LO",
    "SoftwareVersions": "LO", "RescaleSlope": "DS", "RescaleIntercept": "DS", "WindowCenter": "DS",
    "WindowWidth": "DS", "BitsStored": "US", "HighBit": "US", "PixelSpacing": "DS", "SOPInstanceUID": "UI",
    "StudyInstanceUID": "UI", "Modality": "CS", "PhotometricInterpretation": "CS", "SamplesPerPixel": "US",
    "NumberOfFrames": "IS", "BurnedInAnnotation": "CS", "VOILUTFunction": "CS", "RescaleType": "LO",
}
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\\", "nan", "inf", "-inf", "1e309", "-0", "0", "99999999", "00000000", "20240230",
                     "ORIGINAL\\PRIMARY", "DERIVED\\SECONDARY", "SYN", "1.2.3..4", "1." * 40, "\x00" * 8,
                     "2.25." + "9" * 60, "MONOCHROME1", "PALETTE COLOR", "YBR_FULL_422", "SIGMOID", "4294967295"]),
)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.dictionaries(st.sampled_from(sorted(_HEADER_FIELDS)), _TEXT, min_size=1, max_size=6))
def test_hostile_dicom_header_values(workdir, scanner, values):
    """Nonsense in the attributes the loader and the DICOM rules read (dates, UIDs, rescale, window, bits)."""
    import io

    import pydicom
    from pydicom.tag import Tag

    ds = pydicom.dcmread(io.BytesIO(seed_files()["dicom_ct"][0]))
    for keyword, text in values.items():
        raw = text.encode("utf-8", "surrogatepass")
        vr = _HEADER_FIELDS[keyword]
        if vr == "US":  # binary: two bytes from the text's hash
            raw = (abs(hash(text)) & 0xFFFF).to_bytes(2, "little")
        elif len(raw) % 2:
            raw += b" "
        ds[Tag(keyword)] = pydicom.dataelem.RawDataElement(Tag(keyword), vr, len(raw), raw, 0, False, True)
    buf = io.BytesIO()
    ds.save_as(buf)
    path = os.path.join(workdir, "header.dcm")
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())
    assert check_load(path) is None, values
    assert check_scan(scanner, path) is None, values


# --------------------------------------------------------------------------------------------- pathological metadata


# The limit catches a hang or a quadratic blow-up only; the timings are `python -m benchmarks.fuzz --pathological`.
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(pathological_cases()))
def test_pathological_metadata_finishes(name):
    """Inputs built to make a parser do a lot of work: each finishes, and what it returns stays bounded."""
    parse, arg = pathological_cases()[name]
    out = parse(arg)
    assert len(repr(out)) < 4 << 20, name


@pytest.mark.timeout(300)
def test_xmp_regexes_stay_bounded():
    """A keyword followed by a run of whitespace: the backtracking regexes once took hours on one 65 kB segment."""
    from forensics.analyzers.metadata.xmp import read_xmp

    for packet in ("CreatorTool>" + " " * 60000, "DigitalSourceType>" + " " * 60000, "DigitalSourceType" + " " * 60000):
        assert read_xmp([packet]).source_types == [], packet[:20]
