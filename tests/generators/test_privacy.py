"""The sampling-time privacy filter: NCC and perceptual-hash nearest neighbours, the index, and `generate`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from generators.api import _chunk_seed, load_generator
from generators.privacy import PrivacyFilter, ReferenceIndex, fit_to, hash_similarity, nn_similarity, phash_bits


def _smooth(rng: np.random.Generator, n: int, size: int = 32) -> np.ndarray:
    """Smooth random images (blurred noise), so hashes and NCC behave as on real pictures."""
    x = rng.random((n, size, size)).astype(np.float32)
    return np.stack([cv2.GaussianBlur(im, (0, 0), 2.0) for im in x])


def test_ncc_ignores_brightness_and_contrast_but_not_content():
    rng = np.random.default_rng(0)
    refs = _smooth(rng, 5)
    queries = np.stack([0.5 * refs[3] + 0.2, _smooth(rng, 1)[0]])
    best, arg = nn_similarity(queries, refs)
    assert best[0] == pytest.approx(1.0, abs=1e-6) and arg[0] == 3
    assert best[1] < 0.9
    loo, _ = nn_similarity(refs, refs, exclude_self=True)
    assert (loo < 0.99).all()  # without exclude_self each would find itself at 1.0


def test_hash_similarity_is_one_minus_hamming_over_64():
    rng = np.random.default_rng(1)
    bits = rng.random((4, 64)) < 0.5
    q = bits[[2]].copy()
    q[0, :5] = ~q[0, :5]  # 5 bits differ from row 2
    sim, arg = hash_similarity(q, bits)
    assert arg[0] == 2 and sim[0] == pytest.approx(1 - 5 / 64)
    sim, _ = hash_similarity(~bits[:1], bits[:1])
    assert sim[0] == 0.0
    imgs = _smooth(rng, 2)
    h = phash_bits(imgs)
    assert h.shape == (2, 64) and h.dtype == bool
    assert hash_similarity(phash_bits(imgs[:1] * 0.8 + 0.1), h)[0][0] >= 0.95  # same picture, other levels


def test_fit_to_covers_then_centre_crops():
    im = np.zeros((40, 80), np.float32)
    im[:, 20:60] = 1.0  # the central square is white, the sides black
    out = fit_to(im, 20, 20)
    assert out.shape == (20, 20) and out.min() > 0.9
    rgb = np.dstack([im, im, im])
    np.testing.assert_allclose(fit_to(rgb, 20, 20), out, atol=1e-5)


def test_index_builds_once_saves_without_pickle_and_finds_mirrored_copies(tmp_path):
    rng = np.random.default_rng(2)
    ref = tmp_path / "ref"
    (ref / "sub").mkdir(parents=True)
    imgs = _smooth(rng, 3, 48)
    for i, im in enumerate(imgs):
        cv2.imwrite(str(ref / ("sub" if i else "") / f"r{i}.png"), (im * 255).astype(np.uint8))
    (ref / "notes.txt").write_text("not an image")
    (ref / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    index = ReferenceIndex.build(ref, 24, flips=True)
    assert len(index) == 12 and index.size == (24, 24)
    assert [s[0] for s in index.skipped] == ["broken.png"]
    assert "sub/r1.png#hflip" in index.names
    saved = index.save(tmp_path / "index.npz")
    back = ReferenceIndex.load(saved)  # np.load(allow_pickle=False) inside
    np.testing.assert_array_equal(back.images, index.images)
    assert back.names == index.names
    mirrored = fit_to(imgs[1], 24, 24)[:, ::-1][None]
    nn = back.nearest(mirrored)
    assert nn["ncc"][0] > 0.99 and back.names[nn["ncc_ref"][0]] == "sub/r1.png#hflip"
    with pytest.raises(ValueError, match="build it at the samples' size"):
        back.nearest(np.zeros((1, 32, 32), np.float32))


def test_filter_counts_drops_by_ncc_and_by_hash():
    rng = np.random.default_rng(3)
    refs = _smooth(rng, 4)
    index = ReferenceIndex(refs, phash_bits(refs), [f"r{i}" for i in range(4)])
    f = PrivacyFilter(index, 0.95)
    batch = np.stack([refs[0], _smooth(rng, 1)[0], refs[2] * 0.5 + 0.25])
    keep = f.keep(batch)
    assert keep.tolist() == [False, True, False]
    s = f.summary()
    assert (s["drawn"], s["kept"], s["dropped"], s["dropped_ncc"]) == (3, 1, 2, 2)
    assert s["kept_max_ncc"] < 0.95 and "reference" not in json.dumps(s["examples"])
    with pytest.raises(ValueError):
        PrivacyFilter(index, 0.0)


def _planted_reference(tmp_path):
    """A reference folder holding draw 0 of cxr_gan (seed 0) as an 8-bit PNG, plus an unrelated image."""
    gen = load_generator("cxr_gan", device="cpu")
    draw0 = gen.sample(16, seed=_chunk_seed(0, 0))[0]
    ref = tmp_path / "ref"
    ref.mkdir()
    cv2.imwrite(str(ref / "copied.png"), np.round(draw0 * 255).astype(np.uint8))
    cv2.imwrite(str(ref / "other.png"), (_smooth(np.random.default_rng(4), 1, 64)[0] * 255).astype(np.uint8))
    return ref


def test_generate_filter_drops_a_planted_near_copy(tmp_path):
    ref = _planted_reference(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "4", "--out", str(out), "--max-similarity", "0.95",
                                    "--reference", str(ref), "--quiet", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    summary = json.loads(lines[-1])["privacy_filter"]
    assert (summary["drawn"], summary["kept"], summary["dropped"], summary["dropped_ncc"]) == (5, 4, 1, 1)
    assert summary["examples"][0]["ncc"] > 0.99 and summary["references"] == 2
    assert [p.rsplit("/", 1)[-1] for p in lines[:-1]] == [f"cxr_gan_0_{i:05d}.png" for i in (1, 2, 3, 4)]
    assert not (out / "cxr_gan_0_00000.png").exists()
    assert "dropped 1 of 5 samples" in res.stderr
    rows = (out / "labels.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[1].startswith("cxr_gan_0_00001.png,")

    # an unfiltered run into the same folder first leaves draw 0 on disk; the filtered run removes it again
    before = tmp_path / "before"
    assert CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "1", "--out", str(before), "-q"]).exit_code == 0
    assert (before / "cxr_gan_0_00000.png").exists()
    res = CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "1", "--out", str(before), "--max-similarity", "0.95",
                                    "--reference", str(ref), "--quiet", "--device", "cpu"])
    assert res.exit_code == 0 and not (before / "cxr_gan_0_00000.png").exists()

    # the same copy with a cap of one draw: nothing kept, and the run says it stopped at the cap
    res = CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "2", "--out", str(tmp_path / "capped"),
                                    "--max-similarity", "0.95", "--reference", str(ref), "--max-attempts", "1",
                                    "--quiet", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["privacy_filter"]["kept"] == 0
    assert "stopped at the cap of 1 draws with 0/2 kept" in res.stderr


def test_generate_filter_needs_the_reference(tmp_path):
    res = CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "1", "--out", str(tmp_path / "o"),
                                    "--max-similarity", "0.95"])
    assert res.exit_code == 2
    assert "--max-similarity S needs --reference DIR" in res.output
    assert not (tmp_path / "o").exists()
    res = CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "1", "--out", str(tmp_path / "o"),
                                    "--reference", str(tmp_path)])
    assert res.exit_code == 2 and "--reference needs --max-similarity" in res.output
