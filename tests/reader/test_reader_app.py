"""The reading app through Flask's test client: access, path safety, CSRF, answer validation, resume, results."""

from __future__ import annotations

import json
import sqlite3
import zlib

import pytest

from benchmarks.reader.app import create_app
from benchmarks.reader.store import Study


def _invite(study, name="ann", mode="blinded", seed=0) -> str:
    with Study(study) as s:
        return s.add_reader(name, mode, seed=seed)[1]


def _client(study, token=None, owner="owner-token-0123456789"):
    app = create_app(study, owner_token=owner)
    client = app.test_client()
    if token:
        resp = client.get(f"/r/{token}")
        assert resp.status_code == 303 and resp.headers["Location"].endswith("/read")
    return app, client


def _csrf(client) -> str:
    with client.session_transaction() as sess:
        return sess["csrf"]


def _answer(client, image, answer="real", confidence=3, csrf=None, **extra):
    payload = {"image": image, "answer": answer, "confidence": confidence, "x": None, "y": None, "client_ms": 1500}
    payload.update(extra)
    return client.post("/api/answer", data=json.dumps(payload), content_type="application/json",
                       headers={"X-CSRF-Token": csrf if csrf is not None else _csrf(client)})


def test_no_token_no_access(study):
    _, client = _client(study)
    assert client.get("/read").status_code == 403
    assert client.get("/api/item").status_code == 403
    assert client.get("/r/not-a-valid-token-at-all-xx").status_code == 403
    assert client.get("/r/x").status_code == 403
    assert client.get("/o/wrong-owner-token-000000").status_code == 403
    assert client.get("/results").status_code == 403
    assert client.get("/results.json").status_code == 403
    assert client.get("/").status_code == 200  # the page to enter a code


def test_page_is_self_contained_and_locked_down(study):
    _, client = _client(study, _invite(study))
    page = client.get("/read")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere
    assert page.headers["X-Frame-Options"] == "DENY"
    login = create_app(study).test_client().get(f"/r/{_invite(study, 'bob')}")
    flags = login.headers["Set-Cookie"].lower()
    assert "httponly" in flags and "samesite=strict" in flags


@pytest.mark.parametrize("path", [
    "/api/pixels/../../../etc/passwd", "/api/pixels/..%2f..%2fstudy.sqlite", "/api/pixels/%2e%2e",
    "/api/pixels/0123456789abcdef", "/api/pixels/0123456789ABCDEF", "/api/overlay/../study.sqlite",
    "/static/study.sqlite", "/study.sqlite", "/api/pixels/" + "a" * 300,
])
def test_no_request_reaches_files(study, path):
    _, client = _client(study, _invite(study))
    resp = client.get(path)
    assert resp.status_code in (404, 405)
    assert b"SQLite" not in resp.data and b"root:" not in resp.data


def test_only_the_current_image_is_served(study):
    _, client = _client(study, _invite(study))
    item = client.get("/api/item").get_json()
    following = item["following"]
    with Study(study) as s:
        others = [i for i in s.image_ids() if i not in (item["image"]["id"], following)]
    assert len(others) == 4
    assert client.get(f"/api/pixels/{following}").status_code == 200  # the next one may be fetched ahead
    pixels = client.get(f"/api/pixels/{item['image']['id']}")
    im = item["image"]
    assert pixels.status_code == 200
    assert len(pixels.data) == im["width"] * im["height"] * (2 if im["channels"] == 1 else 3)
    assert all(client.get(f"/api/pixels/{i}").status_code == 404 for i in others)  # not yet this reader's turn
    assert "truth" not in json.dumps(item) and "risk" not in json.dumps(item)  # blinded: nothing of the answer
    deflated = client.get(f"/api/pixels/{item['image']['id']}", headers={"Accept-Encoding": "gzip, deflate"})
    assert deflated.headers["Content-Encoding"] == "deflate" and zlib.decompress(deflated.data) == pixels.data


def test_csrf_is_required(study):
    _, client = _client(study, _invite(study))
    image = client.get("/api/item").get_json()["image"]["id"]
    assert _answer(client, image, csrf="").status_code == 403
    assert _answer(client, image, csrf="forged-token-value").status_code == 403
    form = client.post("/api/answer", data={"image": image, "answer": "real", "confidence": 3,
                                            "csrf": _csrf(client)})
    assert form.status_code == 400  # a form post (what another site could send) is not an answer
    assert client.post("/logout").status_code == 403
    assert client.post("/login", data={"token": "x" * 20}).status_code == 403
    assert client.get("/api/item").get_json()["position"] == 0  # nothing was recorded


@pytest.mark.parametrize("change", [
    {"answer": "maybe"}, {"answer": "flag"}, {"confidence": 0}, {"confidence": 6}, {"confidence": "3"},
    {"confidence": True}, {"confidence": 2.5}, {"x": 0.5}, {"x": 1.5, "y": 0.5}, {"x": -0.1, "y": 0.2},
    {"x": "0.5", "y": "0.5"}, {"client_ms": -5}, {"client_ms": 1e12}, {"image": "../../etc/passwd"},
])
def test_invalid_answers_are_refused(study, change):
    _, client = _client(study, _invite(study))
    image = client.get("/api/item").get_json()["image"]["id"]
    assert _answer(client, change.pop("image", image), **change).status_code == 400
    assert client.get("/api/item").get_json()["position"] == 0


def test_malformed_bodies_are_refused(study):
    _, client = _client(study, _invite(study))
    image = client.get("/api/item").get_json()["image"]["id"]
    headers = {"X-CSRF-Token": _csrf(client)}
    nan = '{"image": "IMAGE", "answer": "real", "confidence": 3, "x": NaN, "y": 0.1}'.replace("IMAGE", image)
    for body in ("[1, 2]", "not json", nan, "x" * 20000):
        resp = client.post("/api/answer", data=body, content_type="application/json", headers=headers)
        assert resp.status_code in (400, 413), body[:30]
    assert client.get("/api/item").get_json()["position"] == 0


def test_answers_must_follow_the_order(study):
    _, client = _client(study, _invite(study))
    first = client.get("/api/item").get_json()["image"]["id"]
    with Study(study) as s:
        other = next(i for i in s.image_ids() if i != first)
    assert _answer(client, other).status_code == 409
    assert _answer(client, first).status_code == 200
    assert _answer(client, first).status_code == 409  # answered once only


def test_unprompted_arm_offers_only_accept_or_flag(study):
    _, client = _client(study, _invite(study, mode="unprompted"))
    html = client.get("/read").get_data(as_text=True)
    assert "ynthetic" not in html.split("<aside")[1].split('id="done"')[0]  # the task never says it
    image = client.get("/api/item").get_json()["image"]["id"]
    assert _answer(client, image, answer="synthetic").status_code == 400
    assert _answer(client, image, answer="flag", x=0.25, y=0.75).status_code == 200


def test_acknowledged_answers_are_committed_and_reading_resumes_after_restart(study):
    token = _invite(study)
    _, client = _client(study, token)
    seen = []
    for k in range(3):
        item = client.get("/api/item").get_json()
        assert item["position"] == k
        seen.append(item["image"]["id"])
        assert _answer(client, item["image"]["id"], answer="synthetic", confidence=k + 1).status_code == 200
        # another connection (another process would do the same) sees the answer as soon as it is acknowledged
        with sqlite3.connect(study) as db:
            assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == k + 1
    # a new server on the same study: the same browser session carries on at the fourth image
    restarted = create_app(study).test_client()
    with client.session_transaction() as old, restarted.session_transaction() as new:
        new.update(old)
    item = restarted.get("/api/item").get_json()
    assert item["position"] == 3 and item["image"]["id"] not in seen
    # and the reader's link alone resumes too
    _, again = _client(study, token)
    assert again.get("/api/item").get_json()["position"] == 3
    for _ in range(3):
        image = again.get("/api/item").get_json()["image"]["id"]
        assert _answer(again, image).status_code == 200
    done = again.get("/api/item").get_json()
    assert done["done"] and done["position"] == 6 and "image" not in done


def test_readers_get_their_own_orders(study):
    orders = []
    for name in ("a", "b", "c"):
        with Study(study) as s:
            reader, _ = s.add_reader(name, "blinded")
            orders.append(tuple(r[0] for r in s.db.execute(
                "SELECT image_id FROM assignments WHERE reader_id = ? ORDER BY position", (reader.id,))))
    assert len(set(orders)) > 1 and all(sorted(o) == sorted(orders[0]) for o in orders)


def test_teaching_mode_shows_truth_detector_and_score(study):
    _, client = _client(study, _invite(study, mode="teaching"))
    correct = 0
    for k in range(6):
        item = client.get("/api/item").get_json()
        assert item["score"]["answered"] == k
        image = item["image"]["id"]
        resp = _answer(client, image, answer="synthetic")
        fb = resp.get_json()["feedback"]
        with Study(study) as s:
            truth = s.image(image)["truth"]
        assert fb["truth"] == truth
        correct += truth != "real"
        assert fb["score"] == {"correct": correct, "answered": k + 1}
        assert set(fb["detector"]) >= {"risk", "level", "reasons", "findings"}
        if fb["overlay"]:
            png = client.get(fb["overlay"])
            assert png.status_code == 200 and png.data[:4] == b"\x89PNG"
    assert client.get("/api/item").get_json()["done"]


def test_blinded_mode_gets_no_feedback_or_overlay(study):
    _, client = _client(study, _invite(study))
    image = client.get("/api/item").get_json()["image"]["id"]
    out = _answer(client, image).get_json()
    assert set(out) == {"ok", "next"} and out["next"]["position"] == 1  # the next image, nothing of the last
    assert "truth" not in json.dumps(out) and "risk" not in json.dumps(out)
    assert client.get(f"/api/overlay/{image}").status_code == 404


def test_owner_sees_results(study):
    token = _invite(study, "dr <b>x</b>")
    _, client = _client(study, token)
    for _ in range(6):
        image = client.get("/api/item").get_json()["image"]["id"]
        assert _answer(client, image, answer="synthetic", confidence=4).status_code == 200
    owner = create_app(study, owner_token="owner-token-0123456789").test_client()
    assert owner.get("/o/owner-token-0123456789").status_code == 303
    page = owner.get("/results").get_data(as_text=True)
    assert "dr &lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "<svg" in page and 'class="reader-point"' in page
    data = owner.get("/results.json").get_json()
    r = data["readers"][0]
    assert r["answered"] == 6 and r["sensitivity"]["value"] == 1.0 and r["specificity"]["value"] == 0.0
    assert owner.get("/results.csv").get_data(as_text=True).startswith("who,mode,answered,accuracy")
    # a reader's session is not an owner's
    assert client.get("/results").status_code == 403
