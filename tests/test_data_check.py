"""`medaudit data check`: a data folder verified against its manifests; absent datasets say where to get them."""

from __future__ import annotations

import csv
import hashlib
import json

from click.testing import CliRunner

from cli import main


def _dataset(root, folder: str, files: dict[str, bytes]) -> None:
    d = root / folder
    d.mkdir(parents=True)
    with open(d / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "repo", "commit", "path", "bytes", "sha256", "licence"])
        for name, data in files.items():
            (d / name).write_bytes(data)
            w.writerow([name, "owner/repo", "abc", f"x/{name}", len(data), hashlib.sha256(data).hexdigest(), "CC0"])


def _check(root, *extra):
    result = CliRunner().invoke(main, ["data", "check", str(root), *extra])
    return result.exit_code, result.output


def test_a_folder_that_matches_its_manifest_passes_and_absent_datasets_name_their_source(tmp_path):
    _dataset(tmp_path, "ct_lung_tcia", {"a.png": b"one", "b.png": b"two"})
    code, out = _check(tmp_path, "--format", "json")
    assert code == 0, out
    by_folder = {c["folder"]: c for c in json.loads(out)}
    assert by_folder["ct_lung_tcia"]["status"] == "ok" and by_folder["ct_lung_tcia"]["files"] == 2
    assert by_folder["ct_lung_tcia"]["copied_from"] == ["owner/repo@abc"]
    assert by_folder["cxr_kermany"]["status"] == "missing"
    assert "Mendeley" in by_folder["cxr_kermany"]["origin"] and by_folder["cxr_kermany"]["licence"] == "CC BY 4.0"


def test_changed_missing_and_unlisted_files_fail_with_their_names(tmp_path):
    _dataset(tmp_path, "derm_isic", {"a.jpg": b"one", "b.jpg": b"two", "c.jpg": b"three"})
    (tmp_path / "derm_isic" / "a.jpg").write_bytes(b"eno")  # same size, other bytes
    (tmp_path / "derm_isic" / "b.jpg").unlink()
    (tmp_path / "derm_isic" / "stray\x1b[31m.jpg").write_bytes(b"x")
    code, out = _check(tmp_path)
    assert code == 1
    assert "a.jpg: SHA-256 differs" in out and "b.jpg: missing" in out
    assert "stray\\x1b[31m.jpg: not in the manifest" in out and "\x1b" not in out  # escapes never reach a terminal


def test_a_dataset_folder_without_manifest_cannot_be_verified(tmp_path):
    (tmp_path / "mammo").mkdir()
    code, out = _check(tmp_path)
    assert code == 1 and "no_manifest" in out
