"""The image-reuse index: transformed copies are found with the right transform, unrelated images are not,
claims are respected, and the SQLite file stays whole through a failing bulk add and concurrent readers."""

from __future__ import annotations

import sqlite3
import threading

import cv2
import imagehash
import numpy as np
import pytest
from PIL import Image

from forensics.records import MedicalImage
from forensics.reuse import ReuseIndex, add_paths, query_path
from forensics.reuse import hashing as H
from forensics.reuse.analyzer import ReuseAnalyzer


def _scan(seed: int, size: int = 320) -> np.ndarray:
    """A textured, asymmetric 'radiograph': 1/f noise, an off-centre body ellipse, a few bright blobs."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    f[0, 0] = 1.0
    spec = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / f**1.1
    field = np.real(np.fft.ifft2(spec))
    field = (field - field.mean()) / (field.std() + 1e-9)
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.uniform(0.4, 0.6, 2)
    body = ((xx - cx) ** 2 / 0.12 + (yy - cy) ** 2 / 0.08 < 1).astype(np.float32)
    img = 0.1 + 0.5 * cv2.GaussianBlur(body, (0, 0), 6) + 0.12 * field
    for _ in range(4):
        y, x = rng.integers(20, size - 20, 2)
        cv2.circle(img, (int(x), int(y)), int(rng.integers(4, 12)), float(rng.uniform(0.7, 1.0)), -1)
    return np.clip(img, 0, 1).astype(np.float32)


def _jpeg(x: np.ndarray, q: int = 70) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255


def _write(path, x: np.ndarray) -> str:
    cv2.imwrite(str(path), np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8))
    return str(path)


@pytest.fixture(scope="module")
def filed(tmp_path_factory):
    """An index with 12 synthetic scans, each under its own claim."""
    root = tmp_path_factory.mktemp("reuse")
    paths = [_write(root / f"scan{i}.png", _scan(i)) for i in range(12)]
    db = root / "index.db"
    with ReuseIndex(db) as index:
        for i, p in enumerate(paths):
            index.add(p, claim_id=f"C{i}")
    return db, paths


def test_phash_matches_imagehash():
    x = _scan(1)
    grey = cv2.equalizeHist(H.normalize(x))
    ours = bytes(H.stored_hashes(x)[0]).hex()
    assert imagehash.phash(Image.fromarray(grey)) - imagehash.hex_to_hash(ours) == 0


@pytest.mark.parametrize(
    "name, edit, expect",
    [
        ("hflip", lambda x: x[:, ::-1], "hflip"),
        ("vflip", lambda x: x[::-1], "vflip"),
        ("rot90", lambda x: np.rot90(x), "rot90"),
        ("rot270", lambda x: np.rot90(x, -1), "rot270"),
        ("jpeg", _jpeg, "none"),
        ("resize", lambda x: cv2.resize(x, (160, 160), interpolation=cv2.INTER_AREA), "resize"),
        ("gamma", lambda x: x**0.6, "none"),
        ("crop15", lambda x: x[30:302, 18:290], "crop"),
        ("hflip+crop15+jpeg", lambda x: _jpeg(x[:, ::-1][40:312, 8:280]), "hflip, crop"),
    ],
)
def test_transformed_copy_found(filed, name, edit, expect):
    db, paths = filed
    query = np.ascontiguousarray(edit(_scan(5))).astype(np.float32)
    with ReuseIndex(db, readonly=True) as index:
        matches = index.query(query)
    assert matches, name
    assert matches[0].claim_id == "C5"
    assert matches[0].transform == expect
    assert 0.5 < matches[0].score <= 1.0


def test_unrelated_image_not_found(filed):
    db, _ = filed
    with ReuseIndex(db, readonly=True) as index:
        for seed in (100, 101, 102):
            assert index.query(_scan(seed)) == []


def test_exact_duplicate(filed, tmp_path):
    db, paths = filed
    matches = query_path(db, paths[3])
    assert matches[0]["method"] == "sha256" and matches[0]["transform"] == "exact" and matches[0]["claim_id"] == "C3"
    assert (
        query_path(db, paths[3], exclude_claim="C3") == []
        or query_path(db, paths[3], exclude_claim="C3")[0]["claim_id"] != "C3"
    )
    # adding the same bytes under the same claim is skipped; under another claim it is filed
    db2 = tmp_path / "d.db"
    assert add_paths(db2, [paths[0], paths[0]], "A") == {"added": 1, "skipped_duplicates": 1, "errors": []}
    assert add_paths(db2, [paths[0]], "B")["added"] == 1


def test_add_paths_reports_bad_files(tmp_path):
    good = _write(tmp_path / "a.png", _scan(0))
    (tmp_path / "notes.txt").write_text("not an image")
    out = add_paths(tmp_path / "i.db", [tmp_path], "X")
    assert out["added"] == 1 and [e["code"] for e in out["errors"]] == ["unsupported_format"]
    assert query_path(tmp_path / "i.db", good)[0]["claim_id"] == "X"


def _image(x: np.ndarray, path: str, claim: str | None) -> MedicalImage:
    meta = {} if claim is None else {"claim_id": claim}
    return MedicalImage(pixels=x, path=path, sha256="0" * 64, format="png", metadata=meta)


def test_analyzer_evidence_only_for_other_claims(filed):
    db, paths = filed
    assert ReuseAnalyzer().availability() == (False, "no reuse index given (scan --index FILE)")
    analyzer = ReuseAnalyzer(index_path=db)
    assert analyzer.availability() == (True, "")
    flipped = np.ascontiguousarray(_scan(7)[:, ::-1])
    other = analyzer.analyze(_image(flipped, "/claims/99/x.png", "C99"))
    assert other.score is not None and other.score > 0.5
    ev = other.evidence[0]
    assert ev.code == "reuse.match" and "claim C7" in ev.message and "hflip" in ev.message
    assert analyzer.analyze(_image(flipped, "/claims/7/x.png", "C7")).score is None  # its own claim
    assert analyzer.analyze(_image(_scan(200), "/x.png", "C99")).score is None
    # no claim id: a different file counts, the very same path does not
    assert analyzer.analyze(_image(flipped, "/elsewhere.png", None)).score is not None
    from forensics.io import load

    assert analyzer.analyze(load(paths[7])).score is None
    dup = analyzer.analyze(_image_loaded(paths[7], "C42"))
    assert dup.evidence[0].code == "reuse.exact_duplicate"


def _image_loaded(path: str, claim: str) -> MedicalImage:
    from forensics.io import load

    img = load(path)
    img.metadata["claim_id"] = claim
    return img


def test_registered():
    from forensics.analyzers import ANALYZERS

    assert "reuse" in ANALYZERS
    assert ANALYZERS.create("reuse").kind == "reuse"


def test_failed_bulk_add_commits_nothing_partial(tmp_path):
    db = tmp_path / "crash.db"

    def items():
        for i in range(5):
            yield _scan(i)
        raise RuntimeError("killed mid-batch")

    with ReuseIndex(db) as index:
        with pytest.raises(RuntimeError):
            list(index.add_many(items(), claim_id="A", batch_size=3))
        # the first full batch (3 images) is committed, the interrupted one is not; no orphan rows
        assert len(index) == 3
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM hashes").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM keypoints").fetchone()[0] == 3
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_readers_and_writer(tmp_path):
    db = tmp_path / "c.db"
    with ReuseIndex(db) as index:
        index.add(_scan(0), claim_id="A")
    query = np.ascontiguousarray(_scan(0)[:, ::-1])
    errors: list[BaseException] = []
    found: list[int] = []

    def reader():
        try:
            with ReuseIndex(db, readonly=True) as r:
                for _ in range(3):
                    found.append(len(r.query(query, verify=False)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def writer():
        try:
            with ReuseIndex(db) as w:
                list(w.add_many([_scan(i) for i in range(1, 5)], claim_id="B", batch_size=2))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert found and min(found) >= 1
    with ReuseIndex(db, readonly=True) as r:
        assert len(r) == 5
