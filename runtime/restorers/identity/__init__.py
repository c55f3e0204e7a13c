"""The identity restorer: the aligned crops back unchanged, a check of the face pipeline
(detection, alignment, paste-back), not a restorer. No networks, no options."""
from runtime.restorers.base import RestorerSpec


def _build(sessions, data, device, progress):
    from runtime.restorers.identity.restorer import IdentityRestorer

    return IdentityRestorer()


IDENTITY = RestorerSpec("identity", "gives the aligned crops back unchanged: a check of the face pipeline "
                                    "(detection, alignment, paste-back), not a restorer.", (), (), _build,
                        cpu_onnxruntime=True)
