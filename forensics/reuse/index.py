"""The image-reuse index: a SQLite file of filed images (who filed them, under which claim) and their hashes.

Three tiers, strongest first:
1. ``exact``: the same file bytes (SHA-256) or the same decoded pixels (a re-wrapped file) filed before;
2. ``phash``: 64-bit DCT hashes of the whole image and of 18 sub-windows, over the 8 flips/quarter turns
   (``forensics.reuse.hashing``), within the per-modality distance threshold of ``thresholds.json``;
3. ``orb``: for the nearest hash candidates that miss the threshold (typically crops of 15-20 %), ORB keypoints
   + RANSAC; at least ``inliers`` geometrically consistent matches make a match.

Writes are transactions: an image's row, hashes and keypoints are committed together or not at all, and a bulk
add commits every ``batch_size`` images, so a killed process leaves whole images only. WAL mode lets readers
query while a writer adds. Several processes may create the same new index at once: switching it to WAL and
creating the schema are retried while another process holds the lock, within the busy timeout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensics.errors import InputError
from forensics.io import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from forensics.records import MedicalImage
from forensics.reuse import hashing as H

SCHEMA_VERSION = 2  # 2: DICOM identity columns (hashed UIDs, slice position) and verification thumbnails
THRESHOLDS_FILE = Path(__file__).with_name("thresholds.json")
# Used when thresholds.json is missing; the calibrated file overrides them.
_FALLBACK = {"hash": 6, "candidates": 20, "loose": 20, "inliers": 40}
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's lock before giving up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,           -- of the file bytes
    pixel_sha256 TEXT NOT NULL,     -- of the decoded pixels (catches re-wrapped files)
    path TEXT NOT NULL,
    claim_id TEXT NOT NULL DEFAULT '',
    modality TEXT,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    added REAL NOT NULL,            -- unix time
    UNIQUE (sha256, claim_id)
);
CREATE INDEX IF NOT EXISTS images_sha256 ON images (sha256);
CREATE INDEX IF NOT EXISTS images_pixel_sha256 ON images (pixel_sha256);
CREATE INDEX IF NOT EXISTS images_claim ON images (claim_id);
CREATE TABLE IF NOT EXISTS hashes (
    image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    phash BLOB NOT NULL             -- len(WINDOWS) x 8 bytes, window 0 = whole image
);
CREATE TABLE IF NOT EXISTS thumbs (
    image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    png BLOB NOT NULL               -- the normalized grey image the hashes are computed from (<= 256 px), PNG
);
CREATE TABLE IF NOT EXISTS keypoints (
    image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    points BLOB NOT NULL,           -- float32 (n, 2) at ORB_PX
    descriptors BLOB NOT NULL       -- uint8 (n, 32) ORB
);
"""


# Added by schema 2 to `images`; an index written by an older version gets them (NULL for its rows) when opened
# for writing, and is read without them when opened read-only.
_IDENTITY_COLUMNS = (("study_uid", "TEXT"), ("series_uid", "TEXT"), ("sop_uid", "TEXT"), ("slice_position", "REAL"),
                     ("instance_number", "INTEGER"))
# What a perceptual match means (Match.relation) and the score each relation carries.
SAME_IMAGE, SIMILAR, SAME_SERIES, UNVERIFIED = "same image", "similar (same series?)", "same series, other slice", \
    "unverified"
SIMILAR_SCORE = 0.25  # review level: listed as a lead, alone it leaves the image low


@dataclass
class Record:
    """One filed image, as ``add`` returns it. ``duplicate``: this file was already filed under this claim."""

    id: int
    sha256: str
    path: str
    claim_id: str
    modality: str | None
    added: float
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Match:
    """A filed image the query reuses.

    Attributes:
        distance: Hamming distance (of 64 bits) of the best hash alignment; 0 for exact duplicates.
        transform: what turns the filed image into the query, e.g. ``"hflip, crop"``; ``"exact"`` for the
            same bytes, ``"same pixels"`` for a re-wrapped file, ``"none"`` for a re-encode/window change only.
        score: confidence in [0, 1] that it is the same image.
        method: ``sha256`` | ``pixels`` | ``phash`` | ``orb``.
        inliers: RANSAC keypoint inliers when ``method == "orb"``.
    """

    sha256: str
    path: str
    claim_id: str
    distance: int
    transform: str
    score: float
    method: str = "phash"
    inliers: int | None = None
    modality: str | None = None
    added: float | None = None
    relation: str = SAME_IMAGE
    similarity: float | None = None
    slice_gap_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = round(float(self.score), 4)
        if self.similarity is not None:
            out["similarity"] = round(float(self.similarity), 3)
        return out


@dataclass
class _Prepared:
    image: MedicalImage
    pixel_sha256: str
    phash: np.ndarray  # (W, 8) uint8
    points: np.ndarray
    descriptors: np.ndarray
    identity: dict[str, Any]  # raw DICOM UIDs and geometry; hashed before they reach the index
    thumb: np.ndarray  # the normalized grey image (hashing.normalize), kept to verify matches


def dicom_identity(image: MedicalImage) -> dict[str, Any]:
    """Study/Series/SOP Instance UIDs, the slice position along the slice normal (mm) and the Instance Number of a
    DICOM image; empty for other formats. Raw values: callers hash the UIDs before storing or showing them."""
    ds = image.dicom
    if ds is None:
        return {}
    out: dict[str, Any] = {}
    for key, keyword in (("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID"), ("sop", "SOPInstanceUID")):
        value = str(ds.get(keyword) or "").strip()
        if value:
            out[key] = value
    try:
        ipp = [float(v) for v in ds.get("ImagePositionPatient") or []]
        iop = [float(v) for v in ds.get("ImageOrientationPatient") or []]
        if len(ipp) == 3:
            normal = np.cross(iop[:3], iop[3:]) if len(iop) == 6 else np.array([0.0, 0.0, 1.0])
            out["position"] = float(np.dot(ipp, normal))
    except (TypeError, ValueError):
        pass
    try:
        out["instance"] = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
    except (TypeError, ValueError):
        pass
    return out


def _encode_thumb(grey: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", grey)[1].tobytes()


def _decode_thumb(blob: bytes) -> np.ndarray | None:
    import cv2

    a = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_GRAYSCALE)
    return a if a is not None and min(a.shape) >= H.MIN_SIDE else None

def load_thresholds(path: str | os.PathLike | None = None) -> dict[str, dict[str, int]]:
    p = Path(path) if path else THRESHOLDS_FILE
    if not p.exists():
        return {"default": dict(_FALLBACK)}
    data = json.loads(p.read_text())
    return {k: {**_FALLBACK, **v} for k, v in data.get("modalities", {}).items()}


def stored_path(path: str | os.PathLike) -> str:
    """The absolute path as the index stores it. SQLite text is UTF-8: bytes of a file name that are not (kept by
    os.fsdecode as surrogates) are stored as backslash escapes (``\\xff``) instead of failing the insert."""
    return os.fsencode(os.path.abspath(path)).decode("utf-8", "backslashreplace")


def _as_image(
    item: str | os.PathLike | MedicalImage | np.ndarray,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> MedicalImage:
    if isinstance(item, MedicalImage):
        return item
    if isinstance(item, np.ndarray):
        import hashlib

        return MedicalImage(
            pixels=item, path="<array>", sha256=hashlib.sha256(item.tobytes()).hexdigest(), format="array"
        )
    from forensics.io import load

    return load(item, max_pixels=max_pixels, max_bytes=max_bytes)


def _hashable(image: MedicalImage) -> MedicalImage:
    if not H.hashable(image.pixels):
        h, w = image.pixels.shape[:2]
        raise InputError("too_small", f"{w}x{h} pixels: too small to hash (both sides need {H.MIN_SIDE} or more)")
    return image


def prepare(
    item: str | os.PathLike | MedicalImage | np.ndarray,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> _Prepared:
    """Load (when given a path, through the guarded reader) and compute everything the index stores; no database
    access. Raises InputError: the loader's codes, and ``too_small`` for an image with a side under 2 pixels."""
    image = _hashable(_as_image(item, max_bytes, max_pixels))
    pts, des = H.keypoints(image.pixels)
    return _Prepared(image, H.image_sha256(image.pixels), H.stored_hashes(image.pixels), pts, des,
                     dicom_identity(image), H.normalize(image.pixels))


class ReuseIndex:
    """A reuse index in one SQLite file (created when missing). One instance per thread or process.

    Args:
        db_path: the SQLite file.
        thresholds: per-modality ``{"hash", "loose", "candidates", "inliers"}``; default ``thresholds.json``.
        readonly: open for queries only (``file:...?mode=ro``); the file must exist.
    """

    def __init__(self, db_path: str | os.PathLike, thresholds: dict | None = None, readonly: bool = False):
        self.db_path = os.fspath(db_path)
        self.thresholds = thresholds or load_thresholds()
        self.readonly = readonly
        if readonly:
            uri = Path(self.db_path).resolve().as_uri() + "?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                        check_same_thread=False)
        else:
            Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                        check_same_thread=False)
            _while_busy(self._create)
        self.conn.execute("PRAGMA foreign_keys=ON")
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(images)")}
        self._has_identity = all(name in columns for name, _ in _IDENTITY_COLUMNS)
        self._has_thumbs = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'thumbs'").fetchone() is not None
        salt = self.conn.execute("SELECT value FROM meta WHERE key = 'uid_salt'").fetchone() if columns else None
        self._salt = bytes.fromhex(salt[0]) if salt else None
        self._cache_key: tuple | None = None
        self._ids = np.zeros(0, np.int64)
        self._hashes = np.zeros((0, len(H.WINDOWS)), np.uint64)

    def _create(self) -> None:
        """WAL mode and the schema; idempotent, so a retry after another process created them changes nothing."""
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                self.conn.execute(stmt)
            # Migration from schema 1: add the identity columns; every existing row stays, with NULL identity.
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info(images)")}
            for name, sql_type in _IDENTITY_COLUMNS:
                if name not in columns:
                    self.conn.execute(f"ALTER TABLE images ADD COLUMN {name} {sql_type}")
            self.conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('hash', ?), ('uid_salt', ?)",
                (str(SCHEMA_VERSION), f"phash64x{len(H.WINDOWS)}", os.urandom(16).hex()),
            )
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    # --- housekeeping ---------------------------------------------------------------------------------------

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ReuseIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.conn.execute("SELECT count(*) FROM images").fetchone()[0]

    class _Tx:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, exc, tb):
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
            return False

    def _transaction(self) -> ReuseIndex._Tx:
        return ReuseIndex._Tx(self.conn)

    def limits(self, modality: str | None) -> dict[str, int]:
        """Thresholds for a modality code (CR, DX, CT, XC, ...); ``default`` (the strictest) when unknown."""
        key = (modality or "").upper()
        return self.thresholds.get(key) or self.thresholds.get("default") or dict(_FALLBACK)

    # --- writing --------------------------------------------------------------------------------------------

    def add(
        self, item: str | os.PathLike | MedicalImage | np.ndarray, claim_id: str = "", modality: str | None = None
    ) -> Record:
        """File one image under ``claim_id``; an identical file already filed under the same claim is not re-added."""
        return self._write([prepare(item)], claim_id, modality)[0]

    def add_many(
        self,
        items: Iterable[str | os.PathLike | MedicalImage | np.ndarray],
        claim_id: str = "",
        modality: str | None = None,
        batch_size: int = 64,
    ) -> Iterator[Record]:
        """File many images, one transaction per ``batch_size``: an exception (or a kill) loses at most the
        uncommitted batch, never part of an image. Yields a Record per image once its batch is committed."""
        pending: list[_Prepared] = []
        for item in items:
            pending.append(prepare(item))
            if len(pending) >= batch_size:
                yield from self._write(pending, claim_id, modality)
                pending = []
        if pending:
            yield from self._write(pending, claim_id, modality)

    def _write(self, prepared: list[_Prepared], claim_id: str, modality: str | None) -> list[Record]:
        out: list[Record] = []
        claim = str(claim_id or "")
        with self._transaction() as conn:
            for p in prepared:
                img = p.image
                row = conn.execute(
                    "SELECT id, path, modality, added FROM images WHERE sha256 = ? AND claim_id = ?",
                    (img.sha256, claim),
                ).fetchone()
                if row:
                    out.append(Record(row[0], img.sha256, row[1], claim, row[2], row[3], duplicate=True))
                    continue
                h, w = img.pixels.shape[:2]
                mod = modality or img.modality
                now = time.time()
                ident = p.identity
                cur = conn.execute(
                    "INSERT INTO images (sha256, pixel_sha256, path, claim_id, modality, width, height, added,"
                    " study_uid, series_uid, sop_uid, slice_position, instance_number)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        img.sha256,
                        p.pixel_sha256,
                        stored_path(img.path) if img.path != "<array>" else img.path,
                        claim,
                        mod,
                        w,
                        h,
                        now,
                        self._uid(ident.get("study")),
                        self._uid(ident.get("series")),
                        self._uid(ident.get("sop")),
                        ident.get("position"),
                        ident.get("instance"),
                    ),
                )
                image_id = cur.lastrowid
                conn.execute("INSERT INTO thumbs VALUES (?, ?)", (image_id, _encode_thumb(p.thumb)))
                conn.execute("INSERT INTO hashes VALUES (?, ?)", (image_id, p.phash.tobytes()))
                conn.execute(
                    "INSERT INTO keypoints VALUES (?, ?, ?)",
                    (image_id, p.points.astype(np.float32).tobytes(), p.descriptors.astype(np.uint8).tobytes()),
                )
                out.append(Record(image_id, img.sha256, img.path, claim, mod, now))
        self._cache_key = None
        return out

    def _uid(self, uid: str | None) -> str | None:
        """A UID as the index keeps it: salted (per index) SHA-256, so no raw identifier is stored or shown."""
        if not uid or self._salt is None:
            return None
        import hashlib

        return hashlib.sha256(self._salt + uid.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def filed(self, path: str | os.PathLike, claim_id: str) -> bool:
        """True when a file at ``path`` was filed under ``claim_id`` (what a resumed screening need not redo)."""
        row = self.conn.execute(
            "SELECT 1 FROM images WHERE claim_id = ? AND path = ? LIMIT 1", (str(claim_id), stored_path(path))
        ).fetchone()
        return row is not None

    def remove_claim(self, claim_id: str) -> int:
        """Forget every image filed under a claim; returns how many."""
        with self._transaction() as conn:
            n = conn.execute("DELETE FROM images WHERE claim_id = ?", (str(claim_id),)).rowcount
        self._cache_key = None
        return n

    # --- reading --------------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        key = (self.conn.execute("PRAGMA data_version").fetchone()[0], len(self))
        if key == self._cache_key:
            return
        rows = self.conn.execute("SELECT image_id, phash FROM hashes ORDER BY image_id").fetchall()
        nw = len(H.WINDOWS)
        self._ids = np.array([r[0] for r in rows], np.int64)
        if rows:
            packed = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(len(rows), nw, H.HASH_BYTES)
            self._hashes = H.to_u64(packed)
        else:
            self._hashes = np.zeros((0, nw), np.uint64)
        self._cache_key = key

    def _rows(self, ids: Iterable[int]) -> dict[int, tuple]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        q = ",".join("?" * len(ids))
        cur = self.conn.execute(
            f"SELECT id, sha256, path, claim_id, modality, added, width, height FROM images WHERE id IN ({q})", ids
        )
        return {r[0]: r for r in cur}

    def query(
        self,
        item: str | os.PathLike | MedicalImage | np.ndarray,
        exclude_claim: str | None = None,
        limit: int = 5,
        modality: str | None = None,
        verify: bool = True,
    ) -> list[Match]:
        """Filed images that ``item`` reuses, best first.

        Args:
            item: a path, a loaded MedicalImage or a pixel array.
            exclude_claim: ignore images filed under this claim (the query's own).
            limit: at most this many matches.
            modality: which thresholds apply; default the image's DICOM modality, else ``default``.
            verify: run the ORB + RANSAC stage on near candidates (finds crops; costs ~10-50 ms).

        Raises:
            InputError: the loader's codes for a path, ``too_small`` for an image with a side under 2 pixels.
        """
        image = _hashable(_as_image(item))
        lim = self.limits(modality or image.modality)
        excluded = None if exclude_claim is None else str(exclude_claim)
        found: dict[int, Match] = {}

        def keep(image_id: int, claim: str) -> bool:
            return (excluded is None or claim != excluded) and image_id not in found

        # 1. exact: file bytes, then decoded pixels
        psha = H.image_sha256(image.pixels)
        for method, column, value in (("sha256", "sha256", image.sha256), ("pixels", "pixel_sha256", psha)):
            for r in self.conn.execute(
                f"SELECT id, sha256, path, claim_id, modality, added FROM images WHERE {column} = ?", (value,)
            ):
                if keep(r[0], r[3]):
                    transform = "exact" if method == "sha256" else "same pixels"
                    found[r[0]] = Match(
                        r[1], r[2], r[3], 0, transform, 1.0 if method == "sha256" else 0.99, method, None, r[4], r[5]
                    )

        # 2. perceptual hashes
        self._refresh()
        if len(self._ids):
            q = H.to_u64(H.query_hashes(image.pixels))
            dist, trans, win = H.best_matches(q, self._hashes)
            order = np.argsort(dist, kind="stable")
            close = [i for i in order if dist[i] <= lim["hash"]]
            rows = self._rows(self._ids[close[: limit + len(found) + 50]])
            h, w = image.pixels.shape[:2]
            for i in close:
                r = rows.get(int(self._ids[i]))
                if r is None or not keep(r[0], r[3]):
                    continue
                label = _label(int(trans[i]), crop=bool(win[i]), filed_hw=(r[7], r[6]), query_hw=(h, w))
                score = 0.95 - 0.25 * float(dist[i]) / max(lim["hash"], 1)
                found[r[0]] = Match(r[1], r[2], r[3], int(dist[i]), label, score, "phash", None, r[4], r[5])
                if len(found) >= limit:
                    break

            # 3. keypoints on the nearest candidates the hashes did not settle
            if verify and len(found) < limit:
                cands = [i for i in order[: lim["candidates"]] if dist[i] <= lim["loose"]]
                rows = self._rows(self._ids[cands])
                feats: dict[int, tuple] = {}
                for i in cands:
                    r = rows.get(int(self._ids[i]))
                    if r is None or not keep(r[0], r[3]):
                        continue
                    t = int(trans[i])
                    if t not in feats:
                        feats[t] = H.keypoints(H.undo_transform(image.pixels, t))
                    kp = self.conn.execute(
                        "SELECT points, descriptors FROM keypoints WHERE image_id = ?", (r[0],)
                    ).fetchone()
                    if kp is None:
                        continue
                    filed = (
                        np.frombuffer(kp[0], np.float32).reshape(-1, 2),
                        np.frombuffer(kp[1], np.uint8).reshape(-1, 32),
                    )
                    n = H.ransac_inliers(feats[t], filed)
                    if n >= lim["inliers"]:
                        label = _label(t, crop=True, filed_hw=(r[7], r[6]), query_hw=image.pixels.shape[:2])
                        score = min(0.95, 0.7 + 0.25 * (n - lim["inliers"]) / max(lim["inliers"], 1))
                        found[r[0]] = Match(r[1], r[2], r[3], int(dist[i]), label, score, "orb", n, r[4], r[5])
                        if len(found) >= limit:
                            break

        for image_id, match in found.items():
            if match.method in ("phash", "orb"):
                self._relate(image, image_id, match)
        method_rank = {"sha256": 0, "pixels": 1, "phash": 2, "orb": 3}
        return sorted(found.values(), key=lambda m: (-m.score, method_rank[m.method], m.distance))[:limit]

    def _relate(self, image: MedicalImage, image_id: int, match: Match) -> None:
        """Say what a perceptual match is: DICOM identity first (same SOP Instance: the same image; same series,
        another instance: a neighbouring slice, not reuse), else the pixels (verified against the filed thumbnail):
        "same image" only when the fine structure agrees, otherwise "similar (same series?)" at review level."""
        filed = {}
        if self._has_identity:
            row = self.conn.execute("SELECT series_uid, sop_uid, slice_position FROM images WHERE id = ?",
                                    (image_id,)).fetchone()
            filed = {"series": row[0], "sop": row[1], "position": row[2]} if row else {}
        ident = dicom_identity(image)
        sop, series = self._uid(ident.get("sop")), self._uid(ident.get("series"))
        if sop and sop == filed.get("sop"):
            match.relation = SAME_IMAGE  # the same instance, re-encoded or re-wrapped
            return
        if series and series == filed.get("series"):
            match.relation, match.score = SAME_SERIES, 0.0
            if ident.get("position") is not None and filed.get("position") is not None:
                match.slice_gap_mm = round(abs(ident["position"] - filed["position"]), 3)
            return
        blob = None
        if self._has_thumbs:
            blob = self.conn.execute("SELECT png FROM thumbs WHERE image_id = ?", (image_id,)).fetchone()
        thumb = _decode_thumb(blob[0]) if blob else None
        if thumb is None:
            match.relation = UNVERIFIED  # filed by an index version that kept no thumbnail: the hashes alone
            return
        query = H.undo_transform(H.normalize(image.pixels), H.TRANSFORM_NAMES.index(match.transform.split(",")[0])
                                 if match.transform.split(",")[0] in H.TRANSFORM_NAMES else 0)
        match.similarity = H.verify_similarity(query, thumb)
        if match.similarity < H.SAME_IMAGE_SIMILARITY:
            match.relation, match.score = SIMILAR, min(match.score, SIMILAR_SCORE)

    def stats(self) -> dict[str, Any]:
        n, claims = self.conn.execute("SELECT count(*), count(DISTINCT claim_id) FROM images").fetchone()
        return {"images": n, "claims": claims, "path": self.db_path}


def _while_busy(step) -> None:
    """Run ``step``, again while SQLite says another connection holds the database, up to BUSY_TIMEOUT_S.

    Changing the journal mode of a new database takes an exclusive lock that SQLite does not wait for (no busy
    handler runs there): two processes creating one index at once would fail with "database is locked"."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.25)


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _label(transform: int, crop: bool, filed_hw: tuple[int, int], query_hw: tuple[int, int]) -> str:
    parts = []
    name = H.TRANSFORM_NAMES[transform]
    if name != "none":
        parts.append(name)
    if H.TRANSFORMS[transform][3]:  # transposed: compare the query's sides swapped
        query_hw = (query_hw[1], query_hw[0])
    if crop:
        parts.append("crop")
    else:
        ratio = (query_hw[0] * query_hw[1]) / max(1, filed_hw[0] * filed_hw[1])
        if abs(ratio - 1.0) > 0.02:
            parts.append("resize")
    return ", ".join(parts) or "none"
