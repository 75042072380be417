"""generators.tamper's method registry: every registered method changes only pixels inside its mask, is reproducible,
does what its kind says (a lesion appears / disappears, with grain) on every modality it claims, refuses what it
cannot do, and the file and CLI paths write the mask."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pydicom.examples
import pytest
from click.testing import CliRunner

from cli import main
from forensics.io import load
from generators import tamper as T
from generators.provenance import read_png_text
from generators.tamper.diffusion import LDM_OF
from generators.tamper.lesions import decoder_names

# real images: $MEDAUDIT_DATA, else ../shared/data next to the checkout (or next to its worktree folder)
_ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("MEDAUDIT_DATA") or next(
    (p / "shared" / "data" for p in (_ROOT.parent, _ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
    _ROOT.parent / "shared" / "data"))
SIZE = 128
AT = (44.0, 64.0)
R = 6.0


def _noise(rng: np.random.Generator, shape, sd: float) -> np.ndarray:
    return cv2.GaussianBlur(rng.normal(0, sd, shape).astype(np.float32), (0, 0), 0.6) * 1.6


def _synthetic(modality: str, seed: int = 0) -> np.ndarray:
    """A 128 px image with the modality's layout: a lung field at AT on CT and X-ray, brain at AT on MRI, breast
    tissue at AT on a mammogram; float32 in [0, 1] with grain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    if modality == "ct":
        body = ((xx - 0.5) / 0.45) ** 2 + ((yy - 0.5) / 0.38) ** 2 < 1
        lung = ((xx - 0.34) / 0.14) ** 2 + ((yy - 0.5) / 0.25) ** 2 < 1
        img = np.where(body, 0.55, 0.0) - np.where(lung, 0.48, 0.0) + body * _noise(rng, xx.shape, 0.02)
    elif modality == "xray":
        img = 0.35 + 0.3 * np.abs(xx - 0.5) + 0.1 * yy + _noise(rng, xx.shape, 0.025)
    elif modality == "mri":
        head = ((xx - 0.5) / 0.42) ** 2 + ((yy - 0.5) / 0.45) ** 2
        img = np.where(head < 0.8, 0.45, np.where(head < 1, 0.85, 0.0)) + (head < 1) * _noise(rng, xx.shape, 0.02)
    else:  # mammo: breast on the left, fading toward the skin line; dark film on the right
        breast = np.clip(1.0 - xx / 0.8, 0, 1)
        img = 0.15 + 0.55 * np.sqrt(breast) + (breast > 0) * _noise(rng, xx.shape, 0.015)
    return np.clip(img, 0, 1).astype(np.float32)


def _cases() -> list[tuple[str, str]]:
    return [(m, mod) for m in T.tamper_methods() for mod in T.tamper_method(m).modalities]


def _donor_kwargs(method: str, modality: str) -> dict:
    """For paste methods: another 'patient' (seed 9) with a bright round lesion of radius R at (80, 50)."""
    if not T.tamper_method(method).needs_donor:
        return {}
    d = _synthetic(modality, seed=9)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    d = np.where((xx - 80) ** 2 + (yy - 50) ** 2 <= R**2, np.clip(d + 0.35, 0, 1), d).astype(np.float32)
    return {"donor": d, "donor_at": (80.0, 50.0)}


def _run(method, modality, seed=1, img=None, **kw):
    img = _synthetic(modality) if img is None else img
    kw = {**_donor_kwargs(method, modality), **kw}
    return img, T.tamper_array(img, method, AT, R, modality=modality, seed=seed, lo=0.0, hi=1.0, **kw)


def _disk(r: float, at=AT) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return (xx - at[0]) ** 2 + (yy - at[1]) ** 2 <= r * r


# --------------------------------------------------------------------------------------------- the registry


def test_registry_lists_methods_by_kind_and_held_out_status():
    names = T.tamper_methods()
    assert {"inject", "remove"} <= set(names) and len(names) == len(set(names))
    for kind in T.KINDS:
        assert T.tamper_methods(kind=kind, held_out=True), f"no held-out {kind} method"
        assert T.tamper_methods(kind=kind, held_out=False), f"no training {kind} method"
        assert all(T.tamper_method(n).kind == kind for n in T.tamper_methods(kind=kind))
    assert sorted(T.tamper_methods(held_out=True) + T.tamper_methods(held_out=False)) == sorted(names)
    assert "inject_calc" in T.tamper_methods(modality="mammo") and "inject_calc" not in T.tamper_methods(
        modality="ct")
    for n in names:
        m = T.tamper_method(n)
        assert set(m.modalities) <= set(T.MODALITIES) and m.summary
        assert json.loads(json.dumps(m.to_dict()))["name"] == n
    with pytest.raises(ValueError, match="unknown tamper method"):
        T.tamper_method("swap")


def test_registering_twice_or_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        T.register_method("inject", kind="inject", held_out=False, summary="x")(lambda *a: None)
    with pytest.raises(ValueError, match="kind"):
        T.register_method("new_one", kind="swap", held_out=False, summary="x")


# --------------------------------------------------------------------------------------------- every method


@pytest.mark.parametrize(("method", "modality"), _cases())
def test_method_changes_only_its_mask_and_is_reproducible(method, modality):
    img, res = _run(method, modality)
    assert res.values.shape == img.shape and res.values.dtype == np.float32 and res.mask.dtype == bool
    assert res.method == method and res.mode == T.tamper_method(method).kind
    assert np.array_equal(res.values[~res.mask], img[~res.mask])
    changed = np.abs(res.values - img) > 1e-4
    assert changed.sum() >= 0.3 * res.mask.sum() if method != "inject_calc" else changed.sum() > 5
    assert np.abs(res.values - img)[res.mask].max() > 0.02  # at least the grain is new
    ys, xs = np.nonzero(res.mask)
    assert abs(xs.mean() - AT[0]) < 2 * R and abs(ys.mean() - AT[1]) < 2 * R  # around the target ...
    assert res.mask.sum() < 20 * np.pi * R**2  # ... lesion-sized, not the image
    _, again = _run(method, modality)
    assert np.array_equal(again.values, res.values) and np.array_equal(again.mask, res.mask)
    _, other = _run(method, modality, seed=2)
    assert not np.array_equal(other.values, res.values)


@pytest.mark.parametrize("method", T.tamper_methods(kind="inject"))
def test_injections_add_a_visible_finding(method):
    modality = "mammo" if method == "inject_calc" else "ct"
    img, res = _run(method, modality)
    if method == "inject_calc":
        added = res.values - img
        peaks = (added == cv2.dilate(added, np.ones((3, 3), np.uint8))) & (added > 0.1)
        assert peaks.sum() >= 3  # several separate bright specks
    else:  # in the lung (~0.07): a dense nodule (or the donor's bright lesion) ...
        core = _disk(R / 2)
        assert res.values[core].mean() > img[core].mean() + 0.15
        # ... with grain: not a smooth blob (its high-pass level at least half the tissue's)
        hp = res.values - cv2.GaussianBlur(res.values, (0, 0), 1.2)
        hp0 = img - cv2.GaussianBlur(img, (0, 0), 1.2)
        assert hp[core].std() > 0.5 * hp0[core].std()


@pytest.mark.parametrize("method", T.tamper_methods(kind="remove"))
@pytest.mark.parametrize("modality", ["ct", "xray", "mri", "mammo"])
def test_removals_erase_a_lesion_and_put_grain_back(method, modality):
    clean = _synthetic(modality, seed=3)
    lesion = _disk(R)
    img = np.where(lesion, np.clip(clean + 0.3, 0, 1), clean).astype(np.float32)
    _, res = _run(method, modality, img=img)
    assert res.mask[lesion].all()
    core = _disk(R / 2)
    assert abs(float(res.values[core].mean()) - float(clean[core].mean())) < 0.1
    # grain: the fill is not a smooth patch (its high-pass level is at least half the tissue's)
    hp = res.values - cv2.GaussianBlur(res.values, (0, 0), 1.2)
    hp0 = clean - cv2.GaussianBlur(clean, (0, 0), 1.2)
    assert hp[core].std() > 0.5 * hp0[core].std()


@pytest.mark.parametrize("method", ["inject_ae", "remove_ae"])
def test_generative_methods_say_which_decoder_made_the_pixels(method):
    _, res = _run(method, "xray")
    assert res.details["decoder"] in decoder_names()


@pytest.mark.parametrize("method", ["inject_ldm", "remove_ldm"])
@pytest.mark.parametrize("modality", ["ct", "xray", "mri", "mammo"])
def test_diffusion_methods_use_the_modality_s_latent_diffusion_model(method, modality):
    _, res = _run(method, modality)
    assert res.details["generator"] == LDM_OF[modality]


def test_poisson_paste_meets_the_target_at_its_border():
    img, res = _run("paste_poisson", "xray")
    border = res.mask & ~cv2.erode(res.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    inner = _disk(R / 2)
    assert np.abs(res.values - img)[border].mean() < 0.5 * np.abs(res.values - img)[inner].mean()


def test_refuses_what_a_method_cannot_do():
    img = _synthetic("ct")
    with pytest.raises(ValueError, match="does not apply to ct"):
        T.tamper_array(img, "inject_calc", AT, R, modality="ct")
    with pytest.raises(ValueError, match="donor"):
        T.tamper_array(img, "paste_poisson", AT, R, modality="ct")
    with pytest.raises(ValueError, match="outside the donor"):
        T.tamper_array(img, "paste_alpha", AT, R, modality="ct", donor=img, donor_at=(500, 5))
    with pytest.raises(ValueError, match="unknown modality"):
        T.tamper_array(img, "inject", AT, R, modality="pet")


# --------------------------------------------------------------------------------------------- files and CLI


@pytest.fixture()
def ct_png(tmp_path) -> Path:
    p = tmp_path / "ct.png"
    cv2.imwrite(str(p), (_synthetic("ct") * 255).astype(np.uint8))
    return p


def _read_mask(path) -> np.ndarray:
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}
    return m == 255


def test_tamper_file_writes_the_mask_beside_the_output(ct_png, tmp_path):
    info = T.tamper_file(ct_png, tmp_path / "out.png", "remove_telea", at=AT, radius=R, stamp=False, seed=0)
    assert info["mask_path"] == str(tmp_path / "out.mask.png") and info["method"] == "remove_telea"
    assert info["mode"] == "remove" and info["held_out"] is False
    mask = _read_mask(info["mask_path"])
    assert mask.shape == (SIZE, SIZE) and mask.sum() == info["mask_pixels"]
    assert read_png_text(info["mask_path"]) == {}  # nothing but pixels
    before, after = cv2.imread(str(ct_png), 0), cv2.imread(str(tmp_path / "out.png"), 0)
    assert (before != after).any() and not (before != after)[~mask].any()
    custom = T.tamper_file(ct_png, tmp_path / "b.png", "inject", at=AT, radius=R, mask_path=tmp_path / "m" / "x.png")
    assert _read_mask(tmp_path / "m" / "x.png").sum() == custom["mask_pixels"]
    none = T.tamper_file(ct_png, tmp_path / "c.png", "inject", at=AT, radius=R, mask_path=None)
    assert none["mask_path"] is None and not (tmp_path / "c.mask.png").exists()


def test_paste_from_another_dicom_keeps_hu_units(tmp_path):
    src = pydicom.examples.get_path("ct")
    info = T.tamper_file(src, tmp_path / "out.dcm", "paste_alpha", at=(60, 70), radius=6, stamp=False, seed=0,
                         donor=load(src), donor_at=(30, 40))
    before, after = pydicom.dcmread(src).pixel_array, pydicom.dcmread(tmp_path / "out.dcm").pixel_array
    mask = _read_mask(info["mask_path"])
    assert not (before != after)[~mask].any() and (before != after)[mask].any()


def test_mr_dicom_is_edited_with_the_mri_prior(tmp_path):
    src = pydicom.examples.get_path("mr")
    info = T.tamper_file(src, tmp_path / "out.dcm", "inject_noise", at=(32, 32), radius=4, stamp=False, seed=0)
    assert info["modality"] == "mri"
    before, after = pydicom.dcmread(src).pixel_array, pydicom.dcmread(tmp_path / "out.dcm").pixel_array
    assert not (before != after)[~_read_mask(info["mask_path"])].any() and (before != after).any()


def _cli(*args):
    return CliRunner().invoke(main, ["tamper", *map(str, args)])


def test_cli_lists_every_method():
    result = _cli("--list")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["name"] for r in rows] == T.tamper_methods()
    assert {"kind", "held_out", "modalities", "needs_donor"} <= set(rows[0])


def test_cli_new_methods_on_png_and_dicom(ct_png, tmp_path):
    result = _cli("inject_ae", ct_png, "--at", "44,64", "--radius", "6", "--out", tmp_path / "a.png", "--no-stamp")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["method"] == "inject_ae" and info["held_out"] is True and Path(info["mask_path"]).is_file()
    donor = tmp_path / "donor.png"
    cv2.imwrite(str(donor), (_donor_kwargs("paste_poisson", "ct")["donor"] * 255).astype(np.uint8))
    result = _cli("paste_poisson", ct_png, "--at", "44,64", "--radius", "6", "--donor", donor, "--donor-at", "80,50",
                  "--out", tmp_path / "p.png", "--mask", tmp_path / "p_mask.png")
    assert result.exit_code == 0, result.output
    assert _read_mask(tmp_path / "p_mask.png").sum() == json.loads(result.output)["mask_pixels"]
    dcm = pydicom.examples.get_path("ct")
    result = _cli("remove_ae", dcm, "--at", "64,70", "--out", tmp_path / "r.dcm", "--no-stamp")
    assert result.exit_code == 0, result.output
    mask = _read_mask(tmp_path / "r.mask.png")
    before, after = pydicom.dcmread(dcm).pixel_array, pydicom.dcmread(tmp_path / "r.dcm").pixel_array
    assert (before != after).any() and not (before != after)[~mask].any()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["swap"], "unknown tamper method"),
        (["inject_calc"], "does not apply to ct"),
        (["paste_alpha"], "donor"),
        (["inject", "--modality", "pet"], "pet"),
    ],
)
def test_cli_refuses_with_a_clear_error(ct_png, tmp_path, args, message):
    method, *rest = args
    result = _cli(method, ct_png, "--at", "44,64", "--out", tmp_path / "o.png", *rest)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.mask.png").exists()


# --------------------------------------------------------------------------------------------- real images


def _need(folder: str) -> Path:
    d = DATA / folder
    if not d.is_dir():
        pytest.skip(f"real data not present: {d}")
    return d


def _real(modality: str) -> tuple[np.ndarray, tuple[float, float], float, dict]:
    """(image in [0, 1], lesion position, radius, paste kwargs) from the shared data of each modality."""
    if modality == "ct":
        files = sorted(_need("ct_lung_tcia").glob("*.png"))[:2]
        a, b = (cv2.imread(str(f), 0).astype(np.float32) / 255 for f in files)
        return a, (150.0, 250.0), 9.0, {"donor": b, "donor_at": (360.0, 250.0)}
    if modality == "xray":
        files = sorted(_need("cxr_kermany").glob("*.jpeg"))[:2]
        a, b = (cv2.imread(str(f), 0).astype(np.float32) / 255 for f in files)
        return a, (a.shape[1] * 0.3, a.shape[0] * 0.5), 12.0, {"donor": b, "donor_at": (b.shape[1] * 0.7,
                                                                                         b.shape[0] * 0.5)}
    if modality == "mri":
        import nibabel as nib

        vols = sorted(_need("mri_brain").glob("IXI*.nii.gz"))[:2]
        a, b = (np.asarray(nib.load(str(v)).dataobj, dtype=np.float32) for v in vols)
        a, b = (np.clip(v[:, :, v.shape[2] // 2] / np.percentile(v, 99.5), 0, 1) for v in (a, b))
        return a, (60.0, 60.0), 5.0, {"donor": b, "donor_at": (55.0, 65.0)}
    d = _need("mammo")
    with open(d / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    normal = next(r for r in rows if r["label"] == "normal")
    lesion = next(r for r in rows if r["x"] and ";" not in r["x"])
    a = cv2.imread(str(d / normal["file"]), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    b = cv2.imread(str(d / lesion["file"]), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    # MIAS centres have their origin at the bottom-left
    donor_at = (float(lesion["x"]), b.shape[0] - 1 - float(lesion["y"]))
    # the centre of the breast: the centroid of the bright class
    u8 = (a * 255).astype(np.uint8)
    _, breast = cv2.threshold(cv2.GaussianBlur(u8, (0, 0), 8), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ys, xs = np.nonzero(breast)
    at = (float(xs.mean()), float(ys.mean()))
    return a, at, 25.0, {"donor": b, "donor_at": donor_at, "donor_radius": float(lesion["radius"])}


@pytest.mark.parametrize("modality", ["ct", "xray", "mri", "mammo"])
def test_every_method_on_real_images(modality):
    img, at, r, paste = _real(modality)
    for method in T.tamper_methods(modality=modality):
        kw = paste if T.tamper_method(method).needs_donor else {}
        res = T.tamper_array(img, method, at, r, modality=modality, seed=0, lo=0.0, hi=1.0, **kw)
        assert np.array_equal(res.values[~res.mask], img[~res.mask]), method
        assert np.abs(res.values - img)[res.mask].max() > 0.02, method


def test_cli_on_a_real_mri_volume_and_mammogram(tmp_path):
    volume = sorted(_need("mri_brain").glob("IXI*.nii.gz"))[0]
    result = _cli("inject_ae", volume, "--at", "60,60", "--radius", "5", "--out", tmp_path / "mr.png", "--no-stamp")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["modality"] == "mri" and _read_mask(info["mask_path"]).sum() == info["mask_pixels"] > 0
    film = sorted(_need("mammo").glob("*.pgm"))[0]
    src = tmp_path / "mammo.png"  # forensics.io reads PNG, not PGM
    cv2.imwrite(str(src), cv2.imread(str(film), cv2.IMREAD_UNCHANGED))
    result = _cli("inject_calc", src, "--modality", "mammo", "--at", "300,500", "--radius", "20", "--out",
                  tmp_path / "calc.png", "--no-stamp")
    assert result.exit_code == 0, result.output
    before, after = cv2.imread(str(src), 0), cv2.imread(str(tmp_path / "calc.png"), 0)
    mask = _read_mask(tmp_path / "calc.mask.png")
    assert (after > before)[mask].sum() >= 3 and not (before != after)[~mask].any()
