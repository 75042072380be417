"""A reader study in one SQLite file: images (display pixels, truth, detector verdict), readers, their answers.

Durability: WAL journal with ``synchronous=FULL``; every write is its own transaction, committed before the web app
answers, so an answer the reader saw acknowledged survives a killed server (or a power cut).
Tokens are stored as SHA-256 digests: the database alone does not let anyone read as a reader.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TRUTHS = ("real", "synthetic", "tampered")
MODES = ("blinded", "teaching", "unprompted")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,             -- random hex: says nothing about the file or its truth
    truth TEXT NOT NULL CHECK (truth IN ('real', 'synthetic', 'tampered')),
    sha256 TEXT NOT NULL,            -- of the source file, so the owner can find it again; never shown to readers
    modality TEXT,
    width INTEGER NOT NULL, height INTEGER NOT NULL, channels INTEGER NOT NULL CHECK (channels IN (1, 3)),
    pixels BLOB NOT NULL,            -- zlib: uint16 little-endian grey, or uint8 RGB, row-major
    window_lo REAL NOT NULL, window_hi REAL NOT NULL, invert INTEGER NOT NULL DEFAULT 0,
    region TEXT,                     -- JSON [x0, y0, x1, y1] in [0, 1] where a tampered image was changed, if known
    risk REAL, level TEXT,           -- the detector suite's verdict on the source file (NULL: it could not score)
    detector TEXT NOT NULL,          -- JSON {findings: [{analyzer, score}], reasons: [str]}
    overlay BLOB                     -- PNG: the detector's heatmap over the image, when an analyzer made one
);
CREATE TABLE IF NOT EXISTS readers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL UNIQUE,
    mode TEXT NOT NULL CHECK (mode IN ('blinded', 'teaching', 'unprompted')),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    position INTEGER NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id),
    shown_at REAL,                   -- server clock when last served (time per image, server side)
    PRIMARY KEY (reader_id, position), UNIQUE (reader_id, image_id)
);
CREATE TABLE IF NOT EXISTS answers (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    image_id TEXT NOT NULL REFERENCES images(id),
    position INTEGER NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('real', 'synthetic', 'tampered', 'flag')),
    confidence INTEGER NOT NULL CHECK (confidence BETWEEN 1 AND 5),
    x REAL, y REAL,                  -- where the reader clicked, in [0, 1] of the image; NULL when not
    client_ms REAL, server_ms REAL,
    answered_at REAL NOT NULL,
    PRIMARY KEY (reader_id, image_id)
);
"""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Reader:
    id: int
    name: str
    mode: str


@dataclass(frozen=True)
class Item:
    """One reader's position in the study: the image to show (or None when every image is answered)."""

    position: int
    total: int
    image_id: str | None
    following: str | None = None  # the image after it: the page may fetch it ahead, to show it without waiting


class Study:
    """Open (``create=True``: make) a study file. One connection; use one Study per thread."""

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no study at {self.path}")
        # one thread at a time, but not always the same one: the web app keeps a pool of open studies
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ValueError(f"{self.path} is not a reader study ({exc})") from None
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        if create:
            self.db.executescript(_SCHEMA)
            if self.meta("secret_key") is None:
                self.set_meta("secret_key", secrets.token_hex(32))
                self.set_meta("schema_version", SCHEMA_VERSION)
        elif self.meta("schema_version") != SCHEMA_VERSION:
            self.db.close()
            raise ValueError(f"{self.path} is not a reader study (schema {SCHEMA_VERSION})")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- study facts ------------------------------------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError:
            return default
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def truths_present(self) -> list[str]:
        found = {r[0] for r in self.db.execute("SELECT DISTINCT truth FROM images")}
        return [t for t in TRUTHS if t in found]

    # --- images -----------------------------------------------------------------------------------------------

    def add_image(self, *, truth: str, sha256: str, modality: str | None, pixels: np.ndarray,
                  window: tuple[float, float], invert: bool, risk: float | None, level: str | None, detector: dict,
                  overlay: bytes | None, region: list[float] | None = None) -> str:
        """Store one display image; returns its random id."""
        if truth not in TRUTHS:
            raise ValueError(f"truth must be one of {TRUTHS}")
        h, w = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        dtype = np.dtype("<u2") if channels == 1 else np.dtype("u1")
        blob = zlib.compress(np.ascontiguousarray(pixels, dtype=dtype).tobytes(), 6)
        image_id = secrets.token_hex(8)
        self.db.execute(
            "INSERT INTO images (id, truth, sha256, modality, width, height, channels, pixels, window_lo, window_hi,"
            " invert, region, risk, level, detector, overlay) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (image_id, truth, sha256, modality, w, h, channels, blob, float(window[0]), float(window[1]), int(invert),
             json.dumps(region) if region else None, risk, level, json.dumps(detector), overlay))
        return image_id

    def image(self, image_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()

    def image_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM images ORDER BY id")]

    def pixels(self, row: sqlite3.Row) -> bytes:
        return zlib.decompress(row["pixels"])

    # --- readers ----------------------------------------------------------------------------------------------

    def add_reader(self, name: str, mode: str, seed: int | None = None) -> tuple[Reader, str]:
        """A new reader with their own random order of every image; returns (reader, access token).

        The token is shown once: only its digest is stored.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if not name or len(name) > 100 or not name.isprintable():
            raise ValueError("a reader name is 1-100 printable characters")
        ids = self.image_ids()
        if not ids:
            raise ValueError("the study has no images")
        token = secrets.token_urlsafe(24)
        rng = np.random.default_rng(seed if seed is not None else secrets.randbits(63))
        order = [ids[i] for i in rng.permutation(len(ids))]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.execute("INSERT INTO readers (name, token_sha256, mode, created) VALUES (?, ?, ?, ?)",
                                  (name, token_digest(token), mode, time.time()))
            self.db.executemany("INSERT INTO assignments (reader_id, position, image_id) VALUES (?, ?, ?)",
                                [(cur.lastrowid, pos, image_id) for pos, image_id in enumerate(order)])
            self.db.execute("COMMIT")
        except sqlite3.IntegrityError:
            self.db.execute("ROLLBACK")
            raise ValueError(f"a reader named {name!r} already exists") from None
        return Reader(cur.lastrowid, name, mode), token

    def reader_by_token(self, token: str) -> Reader | None:
        row = self.db.execute("SELECT id, name, mode FROM readers WHERE token_sha256 = ?",
                              (token_digest(token),)).fetchone()
        return None if row is None else Reader(row["id"], row["name"], row["mode"])

    def reader(self, reader_id: int) -> Reader | None:
        row = self.db.execute("SELECT id, name, mode FROM readers WHERE id = ?", (reader_id,)).fetchone()
        return None if row is None else Reader(row["id"], row["name"], row["mode"])

    def readers(self) -> list[Reader]:
        return [Reader(r["id"], r["name"], r["mode"]) for r in self.db.execute("SELECT * FROM readers ORDER BY id")]

    # --- reading ----------------------------------------------------------------------------------------------

    def current(self, reader_id: int) -> Item:
        """The first image this reader has not answered, in their order."""
        total = self.db.execute("SELECT COUNT(*) FROM assignments WHERE reader_id = ?", (reader_id,)).fetchone()[0]
        rows = self.db.execute(
            "SELECT a.position, a.image_id FROM assignments a LEFT JOIN answers b"
            " ON b.reader_id = a.reader_id AND b.image_id = a.image_id"
            " WHERE a.reader_id = ? AND b.image_id IS NULL ORDER BY a.position LIMIT 2", (reader_id,)).fetchall()
        if not rows:
            return Item(total, total, None)
        return Item(rows[0]["position"], total, rows[0]["image_id"], rows[1]["image_id"] if len(rows) > 1 else None)

    def mark_shown(self, reader_id: int, image_id: str) -> None:
        # a clock reading, not an answer: not worth an fsync (the next answer's commit syncs it anyway)
        self.db.execute("PRAGMA synchronous=OFF")
        try:
            self.db.execute("UPDATE assignments SET shown_at = ? WHERE reader_id = ? AND image_id = ?",
                            (time.time(), reader_id, image_id))
        finally:
            self.db.execute("PRAGMA synchronous=FULL")

    def answered(self, reader_id: int, image_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM answers WHERE reader_id = ? AND image_id = ?",
                               (reader_id, image_id)).fetchone() is not None

    def record_answer(self, reader_id: int, image_id: str, *, answer: str, confidence: int, x: float | None,
                      y: float | None, client_ms: float | None) -> None:
        """Store an answer for the reader's current image (committed when this returns)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            item = self.current(reader_id)
            if item.image_id != image_id:
                raise ValueError("not the current image")
            shown = self.db.execute("SELECT shown_at FROM assignments WHERE reader_id = ? AND image_id = ?",
                                    (reader_id, image_id)).fetchone()["shown_at"]
            now = time.time()
            server_ms = None if shown is None else (now - shown) * 1000
            self.db.execute("INSERT INTO answers VALUES (?,?,?,?,?,?,?,?,?,?)",
                            (reader_id, image_id, item.position, answer, confidence, x, y, client_ms, server_ms, now))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def score(self, reader_id: int) -> tuple[int, int]:
        """(correct, answered) so far: correct when 'is it genuine' is answered right (teaching mode's tally)."""
        rows = self.db.execute("SELECT a.answer, i.truth FROM answers a JOIN images i ON i.id = a.image_id"
                               " WHERE a.reader_id = ?", (reader_id,)).fetchall()
        return sum((r["answer"] == "real") == (r["truth"] == "real") for r in rows), len(rows)

    def answers(self) -> list[dict[str, Any]]:
        """Every answer with its reader, truth and the detector's risk on the same image."""
        rows = self.db.execute(
            "SELECT r.name AS reader, r.mode, a.image_id, a.position, a.answer, a.confidence, a.x, a.y, a.client_ms,"
            " a.server_ms, i.truth, i.risk, i.level, i.region FROM answers a JOIN readers r ON r.id = a.reader_id"
            " JOIN images i ON i.id = a.image_id ORDER BY r.id, a.position").fetchall()
        return [dict(r) for r in rows]

    def images_table(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT id, truth, sha256, modality, width, height, risk, level FROM images ORDER BY id")
        return [dict(r) for r in rows]
