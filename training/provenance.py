"""Where a restorer's weights came from, and whether they were trained to restore faces.

Every checkpoint carries its provenance in its metadata; `restore`, `serve`, `client` and
report.json repeat it, and say loudly when faces come from an untrained model."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Provenance:
    """What the weights are (one line) and whether they were trained as a restorer."""

    text: str
    trained: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Provenance":
        return cls(str(d["text"]), bool(d["trained"]))

    def warning(self, restorer: str) -> str | None:
        """The line to show when the faces will not be restored (None when trained)."""
        if self.trained:
            return None
        return (f"warning: {restorer} weights are UNTRAINED ({self.text}): its output is not a restored face; "
                "train or import real weights (README: Training)")
