from __future__ import annotations

import os

from forensics.inputs import iter_inputs


def test_walks_recursively_in_stable_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b" / "c.dcm").write_bytes(b"x")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    got = [(p, e) for p, e in iter_inputs([tmp_path])]
    assert [os.path.relpath(p, tmp_path) for p, _ in got] == ["a.png", os.path.join("b", "c.dcm")]
    assert all(e is None for _, e in got)


def test_symlink_loop_is_an_error_not_a_hang(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "img.png").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    got = list(iter_inputs([tmp_path]))
    codes = [e.code for _, e in got if e is not None]
    assert codes == ["symlink_loop"]
    assert sum(p.endswith("img.png") for p, _ in got) == 1


def test_missing_paths_broken_links_and_image_named_folders(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.png")
    (tmp_path / "scan.dcm").mkdir()
    got = dict(iter_inputs([tmp_path, tmp_path / "absent.png"]))
    assert got[str(tmp_path / "dangling.png")].code == "not_found"
    assert got[str(tmp_path / "scan.dcm")].code == "not_a_file"
    assert got[str(tmp_path / "absent.png")].code == "not_found"
