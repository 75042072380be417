"""The real training data behind the bundled weights: where a user obtains each folder, and a check of a folder.

medaudit never ships or downloads these images. A data folder (``--data DIR`` or ``MEDAUDIT_DATA``) holds one
sub-folder per dataset, each with a ``manifest.csv`` (``file, repo, commit, path, bytes, sha256, licence``) naming
every image byte for byte; ``check_data_dir`` verifies a folder against it (``medaudit data check DIR``).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """One dataset folder: what it is, the original publisher, and the licence that governs its use."""

    folder: str
    what: str
    origin: str
    licence: str


SOURCES = (
    Source("cxr_kermany", "paediatric chest X-rays (pneumonia), 8-bit JPEG",
           "Kermany D., Zhang K., Goldbaum M. (2018), Labeled Optical Coherence Tomography (OCT) and Chest X-Ray "
           "Images for Classification, Mendeley Data v2, https://doi.org/10.17632/rscbjbr9sj.2", "CC BY 4.0"),
    Source("ct_lung_tcia", "axial chest CT slices windowed to 8-bit PNG",
           "Li P. et al. (2020), A Large-Scale CT and PET/CT Dataset for Lung Cancer Diagnosis (Lung-PET-CT-Dx), "
           "The Cancer Imaging Archive, https://doi.org/10.7937/TCIA.2020.NNC2-0461", "CC BY 3.0"),
    Source("derm_isic", "dermoscopy of naevi and melanoma, RGB JPEG, labels.csv",
           "ISIC Archive, https://www.isic-archive.com", "CC0"),
    Source("mri_brain", "brain MRI volumes (NIfTI): IXI T1 and one TCGA-LGG glioma case, labels.csv",
           "IXI dataset, https://brain-development.org/ixi-dataset/ ; Pedano N. et al. (2016), TCGA-LGG, The Cancer "
           "Imaging Archive, https://doi.org/10.7937/K9/TCIA.2016.L4LTD3TK", "CC BY-SA 3.0 (IXI); CC BY 3.0 (TCGA)"),
    Source("mammo", "digitised screen-film mammograms (mini-MIAS), PGM, labels.csv",
           "Suckling J. et al. (1994), The Mammographic Image Analysis Society Digital Mammogram Database, "
           "http://peipa.essex.ac.uk/info/mias.html", "MIAS licence: research use only, no redistribution"),
)


@dataclass
class FolderCheck:
    """The verdict on one dataset folder. ``status``: ok | mismatch | missing | no_manifest."""

    folder: str
    status: str
    files: int = 0
    problems: list[str] = field(default_factory=list)
    source: Source | None = None
    copied_from: list[str] = field(default_factory=list)  # the repositories the manifest names, as ``repo@commit``

    def to_dict(self) -> dict:
        out = {"folder": self.folder, "status": self.status, "files": self.files, "problems": self.problems,
               "copied_from": self.copied_from}
        if self.source is not None:
            out |= {"what": self.source.what, "origin": self.source.origin, "licence": self.source.licence}
        return out


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_folder(folder: Path, source: Source | None = None) -> FolderCheck:
    """Every file of ``folder/manifest.csv`` present with its size and SHA-256; files it does not list are named."""
    check = FolderCheck(folder.name, "ok", source=source)
    manifest = folder / "manifest.csv"
    if not folder.is_dir():
        check.status = "missing"
        return check
    if not manifest.is_file():
        check.status, check.problems = "no_manifest", ["no manifest.csv: nothing to verify against"]
        return check
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    listed = set()
    check.copied_from = sorted({f"{row.get('repo')}@{row.get('commit')}" for row in rows})
    for row in rows:
        name = row.get("file") or ""
        listed.add(name)
        path = folder / name
        if not name or Path(name).name != name:
            check.problems.append(f"manifest row names an unsafe path: {name!r}")
        elif not path.is_file():
            check.problems.append(f"{name}: missing")
        elif str(path.stat().st_size) != row.get("bytes"):
            check.problems.append(f"{name}: {path.stat().st_size} bytes, manifest says {row.get('bytes')}")
        elif file_sha256(path) != row.get("sha256"):
            check.problems.append(f"{name}: SHA-256 differs from the manifest (file changed or re-encoded)")
        else:
            check.files += 1
    extra = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.name not in listed and p.suffix.lower() not in (".csv", ".txt", ".md"))
    check.problems += [f"{name}: not in the manifest" for name in extra]
    if check.problems:
        check.status = "mismatch"
    return check


def check_data_dir(root: Path) -> list[FolderCheck]:
    """A check per known dataset (missing ones included, with where to obtain them) and per other manifest folder."""
    known = {s.folder: s for s in SOURCES}
    checks = [check_folder(root / s.folder, s) for s in SOURCES]
    others = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in known and (p / "manifest.csv").is_file())
    return checks + [check_folder(p) for p in others]
