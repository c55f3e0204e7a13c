"""Published face restorers run from the user's own weights files (GFPGAN, CodeFormer,
RestoreFormer, RestoreFormer++, GPEN-BFR 256/512/1024/2048): one data entry (`PublishedArch`) per architecture, and one
generic spec made from it (`published_spec`), so that adding an architecture is one entry and
its CLI flags, option checks, export (dynamic batch, parity) and backends follow.

The networks are ours (training/published/), loaded from the published key layout by
`training/published/weights.py`. Light: no torch, no `training` here."""
from __future__ import annotations

from runtime.restorers.base import RestorerSpec
from runtime.restorers.options import FIDELITY_OPTION
from runtime.restorers.published.arch import PublishedArch

APACHE = "Apache-2.0"
# GPEN has no LICENSE file; its README's licence section (removed from the README at yangxy/GPEN 2c73670)
GPEN_LICENCE = "© Alibaba, 2021. For academic and non-commercial use only (GPEN's README)"
GPEN = "training.published.gpen:GPEN"
ARCHS = (
    PublishedArch("gfpgan", "GFPGAN (GFPGANv1Clean)", "training.published.gfpgan:GFPGANv1Clean", APACHE,
                  files="GFPGANv1.2.pth, GFPGANv1.3.pth, GFPGANv1.4.pth"),
    PublishedArch("codeformer", "CodeFormer", "training.published.codeformer:CodeFormer",
                  "S-Lab License 1.0 (non-commercial)", non_commercial=True, fidelity=True, files="codeformer.pth"),
    PublishedArch("restoreformer", "RestoreFormer", "training.published.restoreformer:RestoreFormer", APACHE,
                  kwargs=(("heads", 8), ("cross_scales", (16,))), key_prefix="vqvae.",
                  files="RestoreFormer.ckpt (or GFPGAN's RestoreFormer.pth)"),
    PublishedArch("restoreformerpp", "RestoreFormer++", "training.published.restoreformer:RestoreFormer", APACHE,
                  kwargs=(("heads", 4), ("cross_scales", (16, 32))), key_prefix="vqvae.", files="RestoreFormer++.ckpt"),
    # GPEN-BFR: bare state dicts; 256 aligned on ArcFace's template as facefusion runs it, the others on FFHQ's
    PublishedArch("gpen_bfr_256", "GPEN-BFR-256", GPEN, GPEN_LICENCE, non_commercial=True, face_size=256,
                  face_template="arcface_128", wrapper="", files="GPEN-BFR-256.pth",
                  kwargs=(("size", 256), ("channel_multiplier", 1), ("narrow", 0.5))),
    *(PublishedArch(f"gpen_bfr_{s}", f"GPEN-BFR-{s}", GPEN, GPEN_LICENCE, non_commercial=True, face_size=s,
                    wrapper="", files=f"GPEN-BFR-{s}.pth",
                    kwargs=(("size", s), ("channel_multiplier", 2), ("narrow", 1.0)))
      for s in (512, 1024, 2048)),
)
PUBLISHED: dict[str, PublishedArch] = {}   # every registered published architecture by restorer name


def _impl():
    from runtime.restorers.published import restorer

    return restorer


def published_spec(arch: PublishedArch) -> RestorerSpec:
    """The restorer spec of a published architecture (register it with runtime.restorers.register)."""
    PUBLISHED[arch.name] = arch
    contract = arch.contract()
    licence = f"{arch.licence}{'; NON-COMMERCIAL' if arch.non_commercial else ''}"
    return RestorerSpec(
        name=arch.name,
        summary=f"{arch.title} from the user's published weights: --checkpoint {arch.weights_files} "
                f"({arch.face_size} px faces; licence {licence})",
        networks=(contract,),
        options=(FIDELITY_OPTION,) if arch.fidelity else (),
        build=lambda *a, **k: _impl().build(arch, *a, **k),
        torch_modules=lambda checkpoint: {contract.name: _impl().load_network(arch, checkpoint)},
        provenance=lambda checkpoint: _impl().provenance(arch, checkpoint),
        cpu_onnxruntime=True, face_size=arch.face_size, face_template=arch.face_template, needs_checkpoint=arch.weights_files,
    )
