"""Named SaFM configurations (the SaFM paper section III): `safm-base` at the paper's scale,
`safm-tiny` the same code with small widths, fast on CPU for tests and the demo."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SaFMConfig:
    """Widths and scales of the SaFM restorer. The VQGAN parts follow CodeFormer's layout, so
    its published encoder/codebook/generator weights load where the shapes match."""

    name: str
    img_size: int = 512
    nf: int = 64                                   # base channels
    ch_mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8)  # per resolution 512 .. 16
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    emb_dim: int = 256                             # latent / codebook dim (C of the SaFM)
    codebook_size: int = 1024
    heads: int = 8                                 # N_h of the cross-attentions
    seg_channels: int = 64                         # width of the semantic encoder
    lde_scales: tuple[int, ...] = (32, 64, 128, 256)
    norm_groups: int = 32
    num_labels: int = 9                            # region ids of runtime.face.regions.LABELS
    residual: bool = False                         # output = input + decoder output (our addition)
    extra: dict = field(default_factory=dict)

    @property
    def latent_size(self) -> int:
        return self.img_size // 2 ** (len(self.ch_mult) - 1)

    def channels_at(self, res: int) -> int:
        """Channels of the encoder/generator features at resolution `res`."""
        return self.nf * self.ch_mult[(self.img_size // res).bit_length() - 1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SaFMConfig":
        d = dict(d)
        for key in ("ch_mult", "attn_resolutions", "lde_scales"):
            d[key] = tuple(d[key])
        return cls(**d)


CONFIGS: dict[str, SaFMConfig] = {
    "safm-base": SaFMConfig(name="safm-base"),
    "safm-tiny": SaFMConfig(name="safm-tiny", nf=16, ch_mult=(1, 2, 2, 2, 4, 4), num_res_blocks=1,
                            emb_dim=64, codebook_size=128, heads=4, seg_channels=16, lde_scales=(64, 128),
                            norm_groups=8),
    # The shipped demo's architecture (training/weights/safm/README.md): safm-tiny's width at 512 and
    # 256 px, four times its channels from 128 px down (where a x4-degraded face keeps its
    # information, for little cost), two blocks per resolution, LDE at every decoder resolution
    # from 64 up and a residual output, so that a small model trained on few photos starts from
    # the input and only learns the correction (the VQ path alone blurs).
    "safm-small": SaFMConfig(name="safm-small", nf=16, ch_mult=(1, 2, 4, 4, 8, 8), num_res_blocks=2,
                             emb_dim=128, codebook_size=128, heads=4, seg_channels=16,
                             lde_scales=(64, 128, 256, 512), norm_groups=8, residual=True),
}
