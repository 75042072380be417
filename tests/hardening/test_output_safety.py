"""Safety of what medaudit reads and writes: no unpickling anywhere, escaped HTML, redacted patient data, and
reports that cannot be steered outside --out by hostile file names."""

from __future__ import annotations

import ast
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from corpus import real_dicom_with_identity

from benchmarks.fuzz import png_chunk, seed_files, with_png_chunks

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------- never unpickle


def _python_files() -> list[Path]:
    files = [REPO / "cli.py"]
    for package in ("forensics", "generators", "benchmarks"):
        files += sorted((REPO / package).rglob("*.py"))
    return [f for f in files if f.exists()]


def _call_name(node: ast.Call) -> str:
    parts, func = [], node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _kw(node: ast.Call, name: str):
    for kw in node.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def unpickling_sites(source: str) -> list[str]:
    """Every call or import that can unpickle, found in the syntax tree (comments and docstrings do not count)."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name and name.split(".")[0] in ("pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve",
                                                   "joblib"):
                    found.append(f"line {node.lineno}: import {name}")
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            last = name.rsplit(".", 1)[-1]
            if name.startswith(("pickle.", "dill.", "cloudpickle.", "shelve.", "joblib.")) and last in (
                "load", "loads", "open", "Unpickler"):
                found.append(f"line {node.lineno}: {name}(")
            elif name in ("torch.load",) and _kw(node, "weights_only") is not True:
                found.append(f"line {node.lineno}: torch.load( without weights_only=True")
            elif name in ("np.load", "numpy.load") and _kw(node, "allow_pickle") is not False:
                found.append(f"line {node.lineno}: {name}( without allow_pickle=False")
            elif name.endswith("read_pickle"):
                found.append(f"line {node.lineno}: {name}(")
    return found


def test_the_detector_never_unpickles():
    problems = {}
    for path in _python_files():
        sites = unpickling_sites(path.read_text(encoding="utf-8"))
        if sites:
            problems[str(path.relative_to(REPO))] = sites
    assert not problems, problems


def test_the_unpickling_check_catches_what_it_should():
    bad = "import pickle\nimport torch, numpy as np\npickle.loads(b'')\ntorch.load('w')\nnp.load('a.npy')\n" \
          "from joblib import load\ntorch.load('w', weights_only=False)\n"
    good = "import torch, numpy as np\ntorch.load('w', weights_only=True)\nnp.load('a.npy', allow_pickle=False)\n" \
           "# pickle.load(f) in a comment\n"
    assert len(unpickling_sites(bad)) == 6
    assert unpickling_sites(good) == []


# --------------------------------------------------------------------------------------------- hostile values

HOSTILE_NAME = "<script>alert('pn')</script>"
HOSTILE_SERIES = '"><img src=x onerror=alert(1)>'
HOSTILE_TEXT = "</textarea><script>alert(2)</script><a onclick=alert(3)>"
HOSTILE_FILE = "\"'><svg onload=alert(4)> <script>x.png"


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.handlers, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "script":
            self.scripts.append(dict(attrs))
        for name, _ in attrs:
            if name.lower().startswith("on"):
                self.handlers.append((tag, name))


def _audit(args: list[str]):
    from cli import main

    result = CliRunner().invoke(main, ["audit", *args, "-q"])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def hostile_inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ct.dcm").write_bytes(real_dicom_with_identity(PatientName=HOSTILE_NAME, SeriesDescription=HOSTILE_SERIES,
                                                             InstitutionName=HOSTILE_TEXT))
    png = with_png_chunks(seed_files()["png_gray8"][0],
                          png_chunk(b"tEXt", b"parameters\x00" + HOSTILE_TEXT.encode() + b"\nSteps: 20, Seed: 1"),
                          png_chunk(b"tEXt", b"Software\x00" + HOSTILE_NAME.encode()))
    (folder / "text.png").write_bytes(png)
    (folder / HOSTILE_FILE).write_bytes(seed_files()["png_gray8"][0])
    (folder / (HOSTILE_FILE + ".txt")).write_text("not an image")  # an error record carries the name too
    return folder


@pytest.mark.parametrize("include_phi", [False, True])
def test_hostile_values_are_escaped_in_the_html_report(hostile_inputs, tmp_path, include_phi):
    out = tmp_path / "report"
    _audit([str(hostile_inputs), "--out", str(out)] + (["--include-phi"] if include_phi else []))
    html = (out / "report.html").read_text(encoding="utf-8")
    parser = _Elements()
    parser.feed(html)
    # one script runs (the report's own, by CSP hash); the per-image views carry their data as JSON blocks, which a
    # browser never runs - a hostile value breaking out of one would show up here as an extra script element
    code = [s for s in parser.scripts if s.get("type") != "application/json"]
    data = [s for s in parser.scripts if s.get("type") == "application/json"]
    assert len(code) <= 1 and all("src" not in s for s in parser.scripts), parser.scripts
    assert all(s == {"type": "application/json", "class": "vw-config"} for s in data), data
    assert parser.handlers == []
    assert "svg" not in parser.tags
    # the only <img> elements are our own data: URIs (thumbnails, overlays)
    for match in re.finditer(r"<img\b[^>]*>", html):
        assert re.search(r'src="data:image/png;base64,', match.group(0)), match.group(0)
    assert "<script>alert" not in html and "<img src=x" not in html and "<a onclick" not in html
    # the hostile file name is shown (escaped), not dropped
    assert "&lt;svg onload=alert(4)&gt;" in html
    json.loads((out / "report.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------- patient data

IDENTITY = {
    "PatientName": "Quxwell^Zebediah",
    "PatientID": "PIDQX-77321",
    "PatientBirthDate": "19230405",
    "AccessionNumber": "ACCQX9912",
    "InstitutionName": "Saint Quxwell Infirmary",
    "ReferringPhysicianName": "Vorpal^Jabberwock",
    # issue 15 row 14: dates were shown unredacted (HIPAA Safe Harbor counts them)
    "StudyDate": "19770312",
    "SeriesDate": "19770313",
    "AcquisitionDate": "19770314",
    "ContentDate": "19770315",
    "StudyTime": "134159",
}
NEEDLES = ["Quxwell", "Zebediah", "PIDQX-77321", "19230405", "ACCQX9912", "Saint Quxwell", "Vorpal", "Jabberwock",
           "1977", "134159"]


@pytest.fixture
def identified(tmp_path):
    folder = tmp_path / "phi"
    folder.mkdir()
    (folder / "patient.dcm").write_bytes(real_dicom_with_identity(**IDENTITY))
    return folder


def _leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "table"])
def test_scan_output_carries_no_patient_identifiers(identified, tmp_path, fmt):
    from cli import main

    out = tmp_path / f"out.{fmt}"
    result = CliRunner().invoke(main, ["scan", str(identified), "--format", fmt, "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert _leaks(out.read_text(encoding="utf-8")) == []
    assert _leaks(result.output) == []


def test_audit_redacts_patient_identifiers_unless_asked(identified, tmp_path):
    out = tmp_path / "redacted"
    result = _audit([str(identified), "--out", str(out)])
    for name in ("report.html", "report.json", "report.csv"):
        assert _leaks((out / name).read_text(encoding="utf-8")) == [], name
    assert _leaks(result.output) == []
    opted = tmp_path / "with_phi"
    _audit([str(identified), "--out", str(opted), "--include-phi"])
    html = (opted / "report.html").read_text(encoding="utf-8")
    assert "Quxwell" in html and "PIDQX-77321" in html  # the opt-in works, so the redaction test means something
    assert "19770312" in html


def test_screen_carries_no_patient_identifiers_unless_asked(identified, tmp_path):
    """Every file screen writes (images.jsonl, claims.jsonl, report.*) and its stdout/stderr: 0 planted names,
    IDs, dates or institution without --include-phi."""
    from cli import main

    claims = tmp_path / "claims.csv"
    claims.write_text(f"claim_id,path\nC1,{identified / 'patient.dcm'}\n", encoding="utf-8")
    for include_phi in (False, True):
        out = tmp_path / f"out_{include_phi}"
        result = CliRunner().invoke(main, ["screen", str(claims), "--out", str(out), "-q", "--root", str(tmp_path)]
                                    + (["--include-phi"] if include_phi else []))
        assert result.exit_code == 0, result.output
        texts = {f.name: f.read_text(encoding="utf-8") for f in out.iterdir() if f.suffix in (".jsonl", ".html",
                                                                                             ".json", ".csv")}
        assert {"images.jsonl", "claims.jsonl", "report.html"} <= set(texts)
        leaks = {name: _leaks(text) for name, text in texts.items() if _leaks(text)}
        if include_phi:
            assert "19770312" in texts["report.html"]
        else:
            assert leaks == {} and _leaks(result.output) == []


# --------------------------------------------------------------------------------------------- output folder


def _snapshot(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


def test_hostile_file_names_cannot_write_outside_out(tmp_path):
    base = tmp_path / "case"
    deep = base / "in" / "a" / "b"
    deep.mkdir(parents=True)
    png = seed_files()["png_gray8"][0]
    for name in ("..png", "...", "..\\..\\evil.png", "%2e%2e%2fevil.png", " .png", "-rf.png", "=cmd.png"):
        (deep / name).write_bytes(png)
    traversing = str(deep / ".." / ".." / "b_link")  # a path with ../ in it, as a user might type
    os.symlink(deep, base / "in" / "b_link")
    out = base / "out"
    before_parent = set(os.listdir(tmp_path))
    before = _snapshot(base)
    _audit([str(base / "in"), traversing + "/../b/..png", "--out", str(out)])
    written = _snapshot(base) - before
    assert written == {"out/report.html", "out/report.json", "out/report.csv"}, written
    assert set(os.listdir(tmp_path)) == before_parent
    # the CSV cells that spreadsheets would run stay text
    csv_text = (out / "report.csv").read_text(encoding="utf-8")
    assert "\n=cmd" not in csv_text and ",=cmd" not in csv_text


def test_audit_with_a_non_utf8_file_name(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"scan_\xff.png"), "wb") as fh:
        fh.write(seed_files()["png_gray8"][0])
    out = tmp_path / "out"
    _audit([str(folder), "--out", str(out)])
    assert (out / "report.html").exists()


# --------------------------------------------------------------------------------------------- terminal escapes

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\n.png"  # set the title, clear the screen, colour, new line


def _no_control(text: str) -> bool:
    """No escape sequence can start: no ESC, BEL or CSI (the progress bar's own carriage returns are fine)."""
    return not any(c in text for c in "\x1b\x07\x9b")


def test_terminal_escapes_in_file_names_never_reach_the_terminal(tmp_path, monkeypatch):
    """Issue 15 row 12: a file name with escape sequences, `--format table`, reached the terminal as is. Every
    human-facing line escapes control characters; JSON Lines and CSV keep the name exact."""
    from cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / ESCAPES).write_bytes(seed_files()["png_gray8"][0])
    runner = CliRunner()
    table = runner.invoke(main, ["scan", "--format", "table", "--", ESCAPES])
    assert table.exit_code == 0, table.output
    assert _no_control(table.stdout) and _no_control(table.stderr)
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred\\r\\n.png" in table.stdout
    jsonl = runner.invoke(main, ["scan", "-q", "--", ESCAPES])
    assert json.loads(jsonl.stdout)["path"] == ESCAPES

    claims = tmp_path / "claims.csv"
    claims.write_text(f'claim_id,path\n"C\x1b[2J1","{ESCAPES}"\n"C2","{ESCAPES}"\n', encoding="utf-8")
    screen = runner.invoke(main, ["screen", str(claims), "--out", str(tmp_path / "out"), "-q"])
    assert screen.exit_code == 0, screen.output
    assert "C\\x1b[2J1" in screen.stderr and _no_control(screen.stderr) and _no_control(screen.stdout)

    db = tmp_path / "index.sqlite"
    assert runner.invoke(main, ["index", "add", "--claim", "C\x1b[2J9", "--db", str(db), "-q", "--", ESCAPES]
                         ).exit_code == 0
    query = runner.invoke(main, ["index", "query", "--db", str(db), "--", ESCAPES])
    assert query.exit_code == 0 and query.stdout and _no_control(query.stdout)


def test_printable_escapes_every_control_character():
    from forensics.writers import printable

    assert printable("a\x1b[2Jb\x07\x00\x7f\x9b\u202e\udcff.png") == "a\\x1b[2Jb\\x07\\x00\\x7f\\x9b\\u202e\\udcff.png"
    assert printable("plain ünïcode 名前.png") == "plain ünïcode 名前.png"
