"""Published face restorers run from the user's own weights files (GFPGAN, CodeFormer,
RestoreFormer, RestoreFormer++): one data entry (`PublishedArch`) per architecture, and one
generic spec made from it (`published_spec`), so that adding an architecture is one entry and
its CLI flags, option checks, export (dynamic batch, parity) and backends follow.

The networks are ours (training/published/), loaded from the published key layout by
`training/published/weights.py`. Light: no torch, no `training` here."""
from __future__ import annotations

from runtime.restorers.base import RestorerSpec
from runtime.restorers.options import FIDELITY_OPTION
from runtime.restorers.published.arch import PublishedArch

APACHE = "Apache-2.0"
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
        cpu_onnxruntime=True, face_size=arch.face_size, needs_checkpoint=arch.weights_files,
    )
