"""Reuse on CT and MR: DICOM identity decides "same image" vs "same series, other slice"; look-alike slices without
identity are only "similar"; UIDs never appear raw in the index or its outputs; old index files migrate intact."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from test_reuse import _scan

from cli import main
from forensics.reuse import ReuseIndex

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.7001", "1.2.826.0.1.3680043.8.498.7002"
CT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ct_lung_tcia"
CT_DATA = CT_DATA if CT_DATA.is_dir() else Path("/work/shared/data/ct_lung_tcia")


def _ct(path: Path, pixels: np.ndarray, sop: str, z: float, series: str = SERIES, instance: int = 1) -> str:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = STUDY, series, "CT"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, z], [1, 0, 0, 0, 1, 0]
    ds.InstanceNumber = instance
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.round(pixels * 4000).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def _cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def _query(db, path) -> list[dict]:
    return [json.loads(line) for line in _cli("index", "query", str(path), "--db", str(db)).stdout.splitlines()]


def _reuse_evidence(db, path) -> list[dict]:
    out = _cli("scan", "--quiet", "--analyzers", "reuse", "--index", str(db), str(path)).stdout
    record = json.loads(out)
    return [e for f in record["findings"] if f["analyzer"] == "reuse" for e in f["evidence"]]


def test_dicom_identity_decides_same_series_vs_same_image(tmp_path):
    base = _scan(5, 256)
    neighbour = np.clip(base + 0.02 * np.random.default_rng(1).normal(size=base.shape), 0, 1)  # the next slice
    filed = _ct(tmp_path / "s1.dcm", base, f"{SERIES}.1", 10.0, instance=1)
    slice2 = _ct(tmp_path / "s2.dcm", neighbour, f"{SERIES}.2", 15.0, instance=2)
    same = _ct(tmp_path / "again.dcm", neighbour, f"{SERIES}.1", 10.0, instance=1)  # same instance, pixels changed
    copied = _ct(tmp_path / "copy.dcm", base, "1.2.826.0.1.3680043.8.498.9.1", 0.0, series="1.2.826.0.1.3680043.8.9")
    db = tmp_path / "index.sqlite"
    _cli("index", "add", "--quiet", "--claim", "A", "--db", str(db), filed)

    [m] = _query(db, slice2)
    assert m["relation"] == "same series, other slice" and m["score"] == 0 and m["slice_gap_mm"] == 5.0
    ev = _reuse_evidence(db, slice2)
    assert [e["code"] for e in ev] == ["reuse.same_series"] and ev[0]["weight"] == 0.0  # not reuse of itself

    assert _query(db, same)[0]["relation"] == "same image"
    [c] = _query(db, copied)  # identical pixels under new UIDs: the copy is caught by its pixels
    assert c["method"] == "pixels" and c["relation"] == "same image"

    raw = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("index.sqlite-*"))
    for uid in (STUDY, SERIES, f"{SERIES}.1"):
        assert uid.encode() not in raw  # hashed with the index's salt, never stored raw
    assert SERIES not in json.dumps(_query(db, slice2))


@pytest.mark.skipif(not (CT_DATA / "ChestCT_1943.png").exists(), reason="needs ../shared/data/ct_lung_tcia")
def test_png_ct_slices_that_only_look_alike_are_similar_not_same_image(tmp_path):
    """The issue's case: two adjacent CT slices as PNG, pHash distance 4/64, used to read "same image"."""
    db = tmp_path / "index.sqlite"
    _cli("index", "add", "--quiet", "--claim", "A", "--db", str(db), str(CT_DATA / "ChestCT_1944.png"))
    [m] = _query(db, CT_DATA / "ChestCT_1943.png")
    assert m["relation"] == "similar (same series?)" and m["score"] <= 0.25 and m["similarity"] < 0.5
    [ev] = _reuse_evidence(db, CT_DATA / "ChestCT_1943.png")
    assert ev["code"] == "reuse.similar" and "same series?" in ev["message"]
    record = json.loads(_cli("scan", "--quiet", "--analyzers", "reuse", "--index", str(db),
                             str(CT_DATA / "ChestCT_1943.png")).stdout)
    assert record["level"] == "unscored"  # a review-level lead, not medium on its own (no pixel analyzer ran)

    import cv2  # a real re-encoded copy of the filed slice is still the same image
    copy = tmp_path / "copy.jpg"
    cv2.imwrite(str(copy), cv2.imread(str(CT_DATA / "ChestCT_1944.png")), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert _query(db, copy)[0]["relation"] == "same image"


def test_old_index_migrates_without_losing_rows(tmp_path):
    import cv2

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"x{i}.png")
        cv2.imwrite(str(paths[-1]), (_scan(i, 128) * 255).astype(np.uint8))
    db = tmp_path / "old.sqlite"
    with ReuseIndex(db) as index:
        for i, p in enumerate(paths):
            index.add(p, claim_id=f"C{i}")
    con = sqlite3.connect(db)  # turn it into a schema-1 file, as earlier versions wrote it
    for column in ("study_uid", "series_uid", "sop_uid", "slice_position", "instance_number"):
        con.execute(f"ALTER TABLE images DROP COLUMN {column}")
    con.execute("DROP TABLE thumbs")
    con.execute("DELETE FROM meta WHERE key = 'uid_salt'")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()

    copy = tmp_path / "copy1.jpg"  # a re-encoded copy: found by its hashes, which the old rows have
    cv2.imwrite(str(copy), cv2.imread(str(paths[1])), [cv2.IMWRITE_JPEG_QUALITY, 85])
    with ReuseIndex(db, readonly=True) as index:  # read-only: usable as it is
        assert index.query(copy)[0].relation == "unverified"
    _cli("index", "add", "--quiet", "--claim", "D", "--db", str(db), str(tmp_path / "x0.png"))  # opens for writing
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 4
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    assert {"sop_uid", "slice_position"} <= {r[1] for r in con.execute("PRAGMA table_info(images)")}
    con.close()
    [m] = _query(db, copy)
    assert m["claim_id"] == "C1" and m["method"] == "phash" and m["relation"] == "unverified"
