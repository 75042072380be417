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

from benchmarks.fuzz import MUTATIONS, check_load, check_parsers, check_scan, mutate, seed_files

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
