"""The reading web app (Flask): one image at a time, answers committed before they are acknowledged.

Safety, in one place:
- no request names a file: images are rows of the study, fetched by their random id, and only by a reader they
  are assigned to (the current image, or one already answered); Flask's static folder is off;
- every POST carries the session's CSRF token (header or form field) and JSON answers must say so in their
  Content-Type; the session cookie is HttpOnly and SameSite=Strict, signed with a key kept in the study, so a
  restarted server resumes the same sessions;
- answers are validated (the current image, a known answer for the reader's arm, confidence 1-5, a click inside
  the image) and stored in their own transaction before the response goes out;
- pages carry a Content-Security-Policy with a per-response nonce; everything they need is inline (no network).
"""

from __future__ import annotations

import hmac
import math
import queue
import re
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, g, jsonify, redirect, request, session

from benchmarks.reader import report
from benchmarks.reader.store import Study

IMAGE_ID = re.compile(r"^[0-9a-f]{16}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_CLIENT_MS = 24 * 3600 * 1000
LABELS = {"real": "Real", "synthetic": "Synthetic", "tampered": "Tampered", "flag": "Flag this image"}
KEYS = {"real": "r", "synthetic": "s", "tampered": "t", "flag": "f"}


def choices(mode: str, truths: list[str]) -> list[str]:
    """The answers a reader's arm offers: the unprompted arm only accepts or flags (nothing says "synthetic")."""
    if mode == "unprompted":
        return ["real", "flag"]
    return ["real", "synthetic"] + (["tampered"] if "tampered" in truths else [])


def create_app(study_path: str | Path, *, owner_token: str | None = None) -> Flask:
    """The app for one study. ``owner_token`` opens the results page (``/o/<token>``); None: a fresh random one,
    readable as ``app.config["OWNER_TOKEN"]``."""
    study_path = Path(study_path)
    with Study(study_path) as study:  # fail now, not on the first request, when the file is not a study
        secret = study.meta("secret_key")
        truths = study.truths_present()  # images never change once a study is made
    app = Flask(__name__, static_folder=None)
    app.config.update(
        SECRET_KEY=secret, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="medaudit_reader", MAX_CONTENT_LENGTH=16 * 1024,
        OWNER_TOKEN=owner_token or secrets.token_urlsafe(24), RUN_NONCE=secrets.token_hex(8),
    )

    pool: queue.SimpleQueue[Study] = queue.SimpleQueue()  # open studies, one per request at a time

    def db() -> Study:
        if "study" not in g:
            try:
                g.study = pool.get_nowait()
            except queue.Empty:
                g.study = Study(study_path)
        return g.study

    @app.teardown_appcontext
    def _release(_exc: BaseException | None) -> None:
        study = g.pop("study", None)
        if study is not None:
            if study.db.in_transaction:  # a request that failed half way leaves nothing open behind it
                study.db.execute("ROLLBACK")
            pool.put(study)

    @app.before_request
    def _guard() -> None:
        g.nonce = secrets.token_urlsafe(12)
        if request.method == "POST":
            sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
            expected = session.get("csrf")
            if not expected or not hmac.compare_digest(str(sent), expected):
                abort(403, "missing or wrong CSRF token")

    @app.after_request
    def _headers(resp: Response) -> Response:
        nonce = g.get("nonce", "")
        resp.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data: blob:;"
            " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(409)
    @app.errorhandler(413)
    def _error(exc: Any) -> tuple[Any, int]:
        code = getattr(exc, "code", 400)
        message = getattr(exc, "description", "") or "error"
        if request.path.startswith("/api/") or request.path.endswith((".json", ".csv")):
            return jsonify(error=message), code
        return page("message.html", title="Not available", message=message), code

    def page(template: str, **context: Any) -> str:
        return report.render(template, nonce=g.nonce, **context)

    def csrf() -> str:
        session.setdefault("csrf", secrets.token_urlsafe(24))
        return session["csrf"]

    def session_reader():
        # the session holds the reader's own token, not an id: the cookie key is in the study file, and whoever
        # holds that file must still not be able to read as somebody else (tokens are stored only as digests)
        token = session.get("token")
        return db().reader_by_token(token) if isinstance(token, str) and TOKEN.match(token) else None

    def current_reader():
        reader = session_reader()
        if reader is None:
            abort(403, "open the link you were given to start reading")
        return reader

    def require_owner() -> None:
        if session.get("owner") != app.config["RUN_NONCE"]:
            abort(403, "open the owner link printed by `medaudit reader serve`")

    def login(token: str) -> Response:
        reader = db().reader_by_token(token) if TOKEN.match(token or "") else None
        if reader is None:
            abort(403, "this link is not valid")
        session.clear()
        session["token"] = token
        session["csrf"] = secrets.token_urlsafe(24)
        return redirect("/read", code=303)

    # --- pages --------------------------------------------------------------------------------------------------

    @app.get("/")
    def index() -> Any:
        if session_reader() is not None:
            return redirect("/read", code=303)
        return page("message.html", title="medaudit reader", message="", login=True, csrf=csrf())

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)

    @app.get("/r/<token>")
    def reader_link(token: str) -> Response:
        return login(token)

    @app.post("/login")
    def login_form() -> Response:
        return login(request.form.get("token", "").strip())

    @app.get("/o/<token>")
    def owner_link(token: str) -> Response:
        if not hmac.compare_digest(token.encode(), app.config["OWNER_TOKEN"].encode()):
            abort(403, "this link is not valid")
        session.clear()
        session["owner"] = app.config["RUN_NONCE"]
        session["csrf"] = secrets.token_urlsafe(24)
        return redirect("/results", code=303)

    @app.get("/read")
    def read() -> Any:
        reader = current_reader()
        study = db()
        options = choices(reader.mode, truths)
        plain = reader.mode == "unprompted"  # an ordinary review: accept (A) or flag (F)
        config = {"csrf": csrf(), "mode": reader.mode,
                  "choices": [{"value": c, "label": "No concerns" if plain and c == "real" else LABELS[c],
                               "key": "a" if plain and c == "real" else KEYS[c]} for c in options]}
        return page("read.html", mode=reader.mode, config=config, study=study.meta("name", ""))

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return page("message.html", title="Saved",
                    message="Your answers are saved. Open your link again to carry on where you stopped.")

    @app.get("/results")
    def results_page() -> Any:
        require_owner()
        results = report.results_of(db())
        return page("results.html", r=results, svg=report.roc_svg(results))

    @app.get("/results.json")
    def results_json() -> Any:
        require_owner()
        return jsonify(report.results_of(db()))

    @app.get("/results.csv")
    def results_csv() -> Response:
        require_owner()
        return Response(report.readers_csv(report.results_of(db())), mimetype="text/csv")

    # --- the API behind the reading page ------------------------------------------------------------------------

    @app.get("/api/item")
    def item() -> Any:
        return jsonify(item_payload(current_reader(), db()))

    def item_payload(reader, study: Study) -> dict[str, Any]:
        """The reader's current image (what to fetch and how to window it), marked as shown now."""
        current = study.current(reader.id)
        out: dict[str, Any] = {"position": current.position, "total": current.total, "done": current.image_id is None}
        if reader.mode == "teaching":
            out["score"] = dict(zip(("correct", "answered"), study.score(reader.id), strict=True))
        if current.image_id is not None:
            row = study.image(current.image_id)
            study.mark_shown(reader.id, current.image_id)
            out["image"] = {"id": row["id"], "width": row["width"], "height": row["height"],
                            "channels": row["channels"], "window": [row["window_lo"], row["window_hi"]],
                            "invert": bool(row["invert"])}
            out["following"] = current.following
        return out

    def readable(image_id: str):
        """The image row, when this reader may see it now: their current image, the one after it (fetched ahead),
        or one they have answered."""
        reader = current_reader()
        if not IMAGE_ID.match(image_id):
            abort(404, "no such image")
        study = db()
        row = study.image(image_id)
        now = study.current(reader.id)
        if row is None or not (image_id in (now.image_id, now.following) or study.answered(reader.id, image_id)):
            abort(404, "no such image")
        return reader, study, row

    @app.get("/api/pixels/<image_id>")
    def pixels(image_id: str) -> Response:
        _, study, row = readable(image_id)
        if "deflate" in request.accept_encodings:  # stored zlib-compressed: the browser inflates it natively
            resp = Response(row["pixels"], mimetype="application/octet-stream")
            resp.headers["Content-Encoding"] = "deflate"
            resp.vary.add("Accept-Encoding")
            return resp
        return Response(study.pixels(row), mimetype="application/octet-stream")

    @app.get("/api/overlay/<image_id>")
    def overlay(image_id: str) -> Response:
        reader, study, row = readable(image_id)
        if reader.mode != "teaching" or not study.answered(reader.id, image_id) or row["overlay"] is None:
            abort(404, "no such image")
        return Response(row["overlay"], mimetype="image/png")

    @app.post("/api/answer")
    def answer() -> Any:
        reader = current_reader()
        study = db()
        if not request.is_json:
            abort(400, "send the answer as application/json")
        data = request.get_json(silent=True)
        fields = _validate(data, choices(reader.mode, truths))
        try:
            study.record_answer(reader.id, fields.pop("image"), **fields)
        except ValueError as exc:
            abort(409, str(exc))
        out: dict[str, Any] = {"ok": True}
        if reader.mode == "teaching":
            out["feedback"] = _feedback(study, data["image"], fields["answer"], reader.id)
        else:  # the next image comes with the acknowledgement: one round trip less between images
            out["next"] = item_payload(reader, study)
        return jsonify(out)

    return app


def _validate(data: Any, allowed: list[str]) -> dict[str, Any]:
    """The answer's fields, checked; 400 with what is wrong otherwise."""
    if not isinstance(data, dict):
        abort(400, "the answer must be a JSON object")
    image = data.get("image")
    if not isinstance(image, str) or not IMAGE_ID.match(image):
        abort(400, "image: an image id")
    if data.get("answer") not in allowed:
        abort(400, f"answer: one of {', '.join(allowed)}")
    confidence = data.get("confidence")
    if type(confidence) is not int or not 1 <= confidence <= 5:
        abort(400, "confidence: an integer 1-5")
    x, y = data.get("x"), data.get("y")
    if (x is None) != (y is None) or (x is not None and not (_unit(x) and _unit(y))):
        abort(400, "x, y: both null, or both numbers in [0, 1] (where on the image)")
    client_ms = data.get("client_ms")
    if client_ms is not None and not (_number(client_ms) and 0 <= client_ms <= MAX_CLIENT_MS):
        abort(400, "client_ms: milliseconds spent on the image")
    return {"image": image, "answer": data["answer"], "confidence": confidence,
            "x": None if x is None else float(x), "y": None if y is None else float(y),
            "client_ms": None if client_ms is None else float(client_ms)}


def _number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _unit(v: Any) -> bool:
    return _number(v) and 0 <= v <= 1


def _feedback(study: Study, image_id: str, answer: str, reader_id: int) -> dict[str, Any]:
    """What teaching mode shows after an answer: the truth, the detector's verdict and why, the running score."""
    import json

    row = study.image(image_id)
    detector = json.loads(row["detector"])
    correct, answered = study.score(reader_id)
    thresholds = study.meta("thresholds", {})
    return {"truth": row["truth"], "correct": (answer == "real") == (row["truth"] == "real"),
            "exact": answer == row["truth"],
            "detector": {"risk": row["risk"], "level": row["level"], "reasons": detector["reasons"],
                         "findings": detector["findings"],
                         "correct": None if row["risk"] is None else
                         (row["risk"] >= thresholds.get("medium", 0.5)) == (row["truth"] != "real")},
            "overlay": f"/api/overlay/{image_id}" if row["overlay"] is not None else None,
            "region": json.loads(row["region"]) if row["region"] else None,
            "score": {"correct": correct, "answered": answered}}



def make_server(app: Flask, host: str = "127.0.0.1", port: int = 0, log: bool = True):
    """A threaded HTTP server for ``app`` (``port`` 0: a free one, see ``server.server_port``).

    Request lines go to stderr with access tokens masked, so a log never holds a working link.
    """
    import sys

    from werkzeug.serving import WSGIRequestHandler
    from werkzeug.serving import make_server as werkzeug_server

    class Handler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            if log:
                line = re.sub(r"^(\S+ /[ro]/)[^ ?]+", r"\1…", self.requestline)
                print(f"{self.address_string()} {line} {code}", file=sys.stderr, flush=True)

    return werkzeug_server(host, port, app, threaded=True, request_handler=Handler)
