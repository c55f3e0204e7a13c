"""`facerestore evaluate`: degrade clean photos with a named preset (fixed seeds), restore them
with any restorer/backend through the whole-photo pipeline, and measure against the clean ones.

Per face (the aligned crop, warped by the same affine from the clean, degraded and restored
photos): PSNR, SSIM and colour difference (CIE76 in CIELAB, D65) of degraded vs clean and
restored vs clean, over the whole crop; PSNR and SSIM over the face itself (the crop's pixels
where the face-shaped paste mask is at least 1/2, whichever mask pastes); the colour shift (CIE76 between the low-passed degraded input and the
low-passed restored face, sigma = crop/32: what the colour fix keeps small). Per photo: PSNR
of the whole photo, and the largest change outside the paste masks (0: untouched). Writes
evaluation.json, evaluation.md and contact_sheet.png (clean | degraded | restored per face).

Faces are those of the clean photo: one the pipeline does not find after the degradation is
missed, reported per photo and in the table, and scored where the clean photo has it (its
aligned crop of the clean, degraded and restored photos: what the restorer left there), so it
counts against the restorer in the means, never as a smaller denominator.

Several restorers side by side (`--also NAME[=CHECKPOINT]`, e.g. `--also classical`, OpenCV's
NLM denoise + unsharp mask inside the face mask) run on the same degraded copies: one row each in
one table, one column each in one contact sheet, each one's full report in OUT/<restorer>/.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from runtime.face.align import warp_face
from runtime.face.paste import LOW_PASS, face_mask, paste_faces
from runtime.face.pipeline import Face, FaceBatch, FacePipeline
from runtime.files import write_atomic
from runtime.imageio import frame_photo, read_image, to_float, to_uint8
from runtime.restore import collect_inputs, restore_photo
from runtime.restorers import Restorer
from training.data.degradations import PRESETS, degrade
from training.metrics import delta_e76, psnr, ssim

EVAL_SEED = 2_000_003  # degradations drawn here are never drawn by the trainers (they seed from their own seed)
SHEET_SIDE = 192       # contact sheet tile side


@dataclass
class FaceScore:
    """Scores of one face of one degraded copy."""

    photo: str
    copy: int
    face: int
    psnr_degraded: float
    psnr_restored: float
    ssim_degraded: float
    ssim_restored: float
    delta_e_degraded: float
    delta_e_restored: float
    colour_shift: float
    psnr_face_degraded: float
    psnr_face_restored: float
    ssim_face_degraded: float
    ssim_face_restored: float
    found: bool = True   # False: not found after the degradation, scored unrestored where the clean photo has it


def evaluate_photo(clean: np.ndarray, name: str, copy: int, preset: str, pipeline: FacePipeline,
                   restorer: Restorer) -> tuple[list[FaceScore], dict, list[np.ndarray]]:
    """Degrade one clean uint8 RGB photo, restore it, score it. Returns the face scores, the
    photo row and the contact-sheet tiles (clean, degraded, restored per face)."""
    seed = EVAL_SEED + 7919 * copy + sum(name.encode())
    degraded, _ = degrade(clean, seed, replace(PRESETS[preset], clean_fraction=0.0))  # never an undegraded copy
    photo = frame_photo(degraded)
    out, batch, _, _ = restore_photo(photo, pipeline, restorer)
    clean_photo = frame_photo(clean)
    missed = pipeline.align(clean_photo, [f for f in pipeline.find(clean_photo)[0] if not _found(f, batch)])
    restored = out.rgb8()
    size = pipeline.options.size
    masks = pipeline.paste_masks(batch) if len(batch) else None
    faces, tiles = [], []
    scored = [(a, m, True) for a, m in zip(batch.affines, batch.label_maps)]
    scored += [(a, m, False) for a, m in zip(missed.affines, missed.label_maps)]
    for i, (affine, labels, found) in enumerate(scored):
        c, d, r = (to_uint8(warp_face(to_float(x), affine, size)) for x in (clean, degraded, restored))
        face = face_mask(labels) >= 0.5
        faces.append(FaceScore(name, copy, i, psnr(d, c), psnr(r, c), ssim(d, c), ssim(r, c), delta_e76(d, c),
                               delta_e76(r, c), delta_e76(r, d, LOW_PASS * size), psnr(d, c, face), psnr(r, c, face),
                               ssim(d, c, face), ssim(r, c, face), found))
        tiles.append(np.concatenate([cv2.resize(x, (SHEET_SIDE, SHEET_SIDE), interpolation=cv2.INTER_AREA)
                                     for x in (c, d, r)], axis=1))
    touched = np.zeros(clean.shape[:2], np.float32)
    if len(batch):
        touched = paste_faces(touched[..., None], np.ones((len(batch), size, size, 1), np.float32), batch.affines,
                              masks)[..., 0]
    outside = touched == 0
    changed = np.abs(restored.astype(np.int16) - degraded.astype(np.int16)).max(axis=2)
    row = {"photo": name, "copy": copy, "faces": len(batch), "missed": len(missed),
           "psnr_photo_degraded": psnr(degraded, clean),
           "psnr_photo_restored": psnr(restored, clean),
           "max_change_outside_faces": int(changed[outside].max()) if outside.any() else 0}
    return faces, row, tiles


def _found(face: Face, batch: FaceBatch) -> bool:
    """Whether a face of the clean photo is among the faces found in the degraded one (a
    detection centred within half its box width of it)."""
    d = face.detection
    return any(np.linalg.norm(f.detection.center - d.center) < 0.5 * d.width for f in batch.faces)



def _evaluate(inputs: list[Path], pipeline: FacePipeline, restorer: Restorer, preset: str,
              copies: int) -> tuple[dict, list[np.ndarray]]:
    """Evaluate every photo of `inputs` (`copies` degradations each): the result and the contact
    sheet's tiles."""
    if preset not in PRESETS:
        raise ValueError(f"unknown degradation preset {preset!r}; one of {', '.join(PRESETS)}")
    files = collect_inputs(inputs)
    if not files:
        raise FileNotFoundError(f"no image files in {', '.join(map(str, inputs))}")
    faces, photos, tiles = [], [], []
    for path, copy in tqdm([(f, k) for f, _ in files for k in range(copies)], desc=f"evaluate ({restorer.name})",
                           unit="photo", disable=None):
        clean = read_image(path).rgb8()
        f, row, t = evaluate_photo(clean, path.name, copy, preset, pipeline, restorer)
        faces += f
        photos.append(row)
        tiles += t
    keys = [k for k in asdict(faces[0]) if k not in ("photo", "copy", "face", "found")] if faces else []
    mean = {k: round(float(np.mean([getattr(s, k) for s in faces])), 4) for k in keys}
    origin = restorer.provenance
    result = {"restorer": restorer.name, "provenance": None if origin is None else origin.to_dict(),
              "untrained": origin is not None and not origin.trained, "preset": preset,
              "copies": copies, "faces": len(faces), "missed": sum(not s.found for s in faces), "photos": len(files),
              "mean": mean, "per_face": [asdict(s) for s in faces], "per_photo": photos}
    return result, tiles


def _write(out_dir: Path, result: dict, tiles: list[np.ndarray]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "evaluation.json", json.dumps(result, indent=2).encode())
    write_atomic(out_dir / "evaluation.md", markdown(result).encode())
    if tiles:
        write_atomic(out_dir / "contact_sheet.png", cv2.imencode(".png", np.concatenate(tiles)[..., ::-1])[1].tobytes())


def evaluate_folder(inputs: list[Path], out_dir: Path, pipeline: FacePipeline, restorer: Restorer,
                    preset: str = "blur2-x4-jpeg60", copies: int = 1) -> dict:
    """Evaluate every photo of `inputs` (`copies` degradations each) and write the reports."""
    result, tiles = _evaluate(inputs, pipeline, restorer, preset, copies)
    _write(out_dir, result, tiles)
    return result


def evaluate_side_by_side(inputs: list[Path], out_dir: Path, runs: list[tuple[FacePipeline, Restorer]],
                          preset: str = "blur2-x4-jpeg60", copies: int = 1) -> list[dict]:
    """Several restorers on the same degraded copies (the degradation's seeds do not depend on
    the restorer): each one's report in OUT/<restorer>/, and OUT/evaluation.md (one row per
    restorer) and OUT/contact_sheet.png (clean | degraded | each restorer, per face)."""
    results, restored = [], []
    for pipeline, restorer in runs:
        result, tiles = _evaluate(inputs, pipeline, restorer, preset, copies)
        _write(out_dir / restorer.name, result, tiles)
        results.append(result)
        restored.append(tiles)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "evaluation.json", json.dumps({"preset": preset, "copies": copies, "restorers": [
        {k: r[k] for k in ("restorer", "provenance", "faces", "mean")} for r in results]}, indent=2).encode())
    write_atomic(out_dir / "evaluation.md", side_by_side_markdown(results).encode())
    if all(len(t) == len(restored[0]) for t in restored) and restored[0]:   # the same faces found for each
        rows = [np.concatenate([restored[0][i][:, :2 * SHEET_SIDE]] + [t[i][:, 2 * SHEET_SIDE:] for t in restored], axis=1)
                for i in range(len(restored[0]))]
        write_atomic(out_dir / "contact_sheet.png", cv2.imencode(".png", np.concatenate(rows)[..., ::-1])[1].tobytes())
    return results


def side_by_side_markdown(results: list[dict]) -> str:
    """One row per restorer (mean over faces), the degraded input first."""
    first = results[0]
    lines = [f"# Evaluation side by side, preset `{first['preset']}`", "",
             f"{first['faces']} faces in {first['photos']} photos x {first['copies']} degraded copies; "
             "columns of the contact sheet: clean | degraded | " + " | ".join(r["restorer"] for r in results), "",
             "| restorer | PSNR dB face | SSIM face | PSNR dB crop | SSIM crop | CIE76 vs clean | colour shift | weights |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    m = first["mean"]
    if m:
        lines.append(f"| (degraded input) | {m['psnr_face_degraded']:.2f} | {m['ssim_face_degraded']:.4f} | "
                     f"{m['psnr_degraded']:.2f} | {m['ssim_degraded']:.4f} | {m['delta_e_degraded']:.2f} | | |")
    for r in results:
        m, origin = r["mean"], r["provenance"] or {}
        if m:
            lines.append(f"| {r['restorer']} | {m['psnr_face_restored']:.2f} | {m['ssim_face_restored']:.4f} | "
                         f"{m['psnr_restored']:.2f} | {m['ssim_restored']:.4f} | {m['delta_e_restored']:.2f} | "
                         f"{m['colour_shift']:.2f} | {origin.get('text', '')}{' (UNTRAINED)' if origin and not origin['trained'] else ''} |")
    return "\n".join(lines) + "\n"


def markdown(result: dict) -> str:
    """The evaluation as a Markdown report."""
    m = result["mean"]
    untrained = " (UNTRAINED weights: not a restorer)" if result["untrained"] else ""
    missed = (f" {result['missed']} of them not found after the degradation: scored as left unrestored, in the "
              "means." if result["missed"] else " Every face was found after the degradation.")
    lines = [f"# Evaluation: {result['restorer']}{untrained}, preset `{result['preset']}`", "",
             f"{result['faces']} faces in {result['photos']} photos x {result['copies']} degraded copies.{missed}", ""]
    if m:
        lines += ["| mean over faces | degraded | restored |", "|---|---:|---:|",
                  f"| PSNR dB, face (inside the face-shaped mask) | {m['psnr_face_degraded']:.2f} | {m['psnr_face_restored']:.2f} |",
                  f"| SSIM, face | {m['ssim_face_degraded']:.4f} | {m['ssim_face_restored']:.4f} |",
                  f"| PSNR dB, whole aligned crop | {m['psnr_degraded']:.2f} | {m['psnr_restored']:.2f} |",
                  f"| SSIM, whole aligned crop | {m['ssim_degraded']:.4f} | {m['ssim_restored']:.4f} |",
                  f"| colour difference vs clean (CIE76) | {m['delta_e_degraded']:.2f} | {m['delta_e_restored']:.2f} |",
                  f"| colour shift vs input, low-passed (CIE76) | | {m['colour_shift']:.2f} |", ""]
    lines += ["| photo | copy | faces found | missed | PSNR photo degraded | PSNR photo restored | "
              "max change outside faces |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['photo']} | {r['copy']} | {r['faces']} | {r['missed']} | {r['psnr_photo_degraded']:.2f} | "
              f"{r['psnr_photo_restored']:.2f} | {r['max_change_outside_faces']} |" for r in result["per_photo"]]
    return "\n".join(lines) + "\n"
