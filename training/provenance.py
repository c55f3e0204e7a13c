"""Where a restorer's weights came from, and whether they were trained to restore faces.

Every checkpoint carries its provenance in its metadata; `restore`, `serve`, `client` and
report.json repeat it, and say loudly when faces come from an untrained model."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Provenance:
    """What the weights are (one line), whether they were trained as a restorer, and their
    licence where known (`non_commercial`: the licence forbids commercial use)."""

    text: str
    trained: bool
    licence: str | None = None
    non_commercial: bool = False

    def to_dict(self) -> dict:
        """text and trained, and the licence fields where a licence is known."""
        d = asdict(self)
        return d if self.licence is not None else {"text": self.text, "trained": self.trained}

    @classmethod
    def from_dict(cls, d: dict) -> "Provenance":
        return cls(str(d["text"]), bool(d["trained"]), d.get("licence"), bool(d.get("non_commercial", False)))

    def licence_notice(self, restorer: str) -> str | None:
        """The line to show when the weights' licence forbids commercial use (None otherwise)."""
        if not self.non_commercial:
            return None
        return f"NOTICE: {restorer} weights are licensed for NON-COMMERCIAL use only ({self.licence})"

    def warning(self, restorer: str) -> str | None:
        """The line to show when the faces will not be restored (None when trained)."""
        if self.trained:
            return None
        return (f"warning: {restorer} weights are UNTRAINED ({self.text}): its output is not a restored face; "
                "train or import real weights (README: Training)")

    def refusal(self, restorer: str) -> str | None:
        """The one-line reason to refuse running these weights unless asked (None when trained)."""
        if self.trained:
            return None
        return (f"{restorer} weights are untrained ({self.text}): their output is not a restored face; train or "
                "import real weights (README: Training), or pass --allow-untrained to run them anyway")


def safm_provenance(checkpoint: Path) -> Provenance:
    """The provenance of a SaFM checkpoint (`<stem>.safetensors` + `<stem>.json`) from its .json,
    without torch (`restore` on ONNX Runtime reads it): the 'provenance' entry it was written
    with, or inferred from older metadata. ValueError naming a missing file."""
    checkpoint = Path(checkpoint)
    for f in (checkpoint.with_suffix(".safetensors"), checkpoint.with_suffix(".json")):
        if not f.is_file():
            raise ValueError(f"{f}: not found (a SaFM checkpoint is <stem>.safetensors + <stem>.json)")
    meta = json.loads(checkpoint.with_suffix(".json").read_text())
    if "provenance" in meta:
        return Provenance.from_dict(meta["provenance"])
    name = meta.get("config", {}).get("name", "safm")
    if meta.get("step"):
        return Provenance(f"{name} trained {meta['step']} steps on {meta.get('train', {}).get('data', '?')}", True)
    if "codeformer_source" in meta:
        return Provenance(f"{name}: CodeFormer encoder, codebook and generator imported from {meta['codeformer_source']}; "
                          "the fusion (SaFM) and LDE are random", False)
    return Provenance(f"{name} random init, seed {meta.get('seed', '?')}", False)
