"""The served job's request checks and rendering, without a server: option ranges, base64
photos, the output format, what face_preprocess is given to check, instance counts and queue
policies, and the tensor descriptions of the ensembles."""
from __future__ import annotations

import base64

import pytest

from export.triton_repo import model_configs
from runtime.restorers import CONTRACTS
from runtime.contracts.service import PREPROCESS, PYTHON_MODELS, SERVICES, TIMEOUT, Capacity
from runtime.imageio import ImageError
from runtime.serving.request_checks import RANGES, answer_bytes, check_options, check_output_size, output_suffix, \
    passes_through, photo_bytes
from runtime.samples import ASTRONAUT
from facerestore.cli import main


@pytest.mark.parametrize("name,good,bad", [("UPSCALE", [0.125, 1, 8], [0, -1, 0.001, 100, float("nan"), float("inf")]),
                                           ("FIDELITY", [0, 0.5, 1], [-5, 1e30, float("nan")]),
                                           ("STEPS", [1, 200], [0, -5, 1000, 100000]),
                                           ("STRENGTH", [1e-3, 1], [0, 5]),
                                           ("TIMEOUT", [0.5, 600], [0, -1, 1e9])])
def test_option_ranges(name, good, bad):
    for value in good:
        check_options({name: value})
    for value in bad:
        with pytest.raises(ValueError, match=f"{name} must be in"):
            check_options({name: value})
    assert set(RANGES) <= {t.name for t in PREPROCESS.inputs}


def test_output_format_and_size():
    assert output_suffix(b"JPG") == ".jpg" and output_suffix(".webp") == ".webp"
    for bad in (b"exe", b"../../x", b""):
        with pytest.raises(ValueError, match="OUTPUT_FORMAT"):
            output_suffix(bad)
    check_output_size((512, 512), 8.0)
    with pytest.raises(ImageError, match="exceeds"):
        check_output_size((8000, 8000), 2.0)
    with pytest.raises(ImageError, match="empty photo"):
        check_output_size((4, 4), 0.125)


def test_only_a_faceless_photo_at_scale_one_in_its_own_format_passes_through():
    data = ASTRONAUT.read_bytes()   # a PNG
    assert passes_through(data, 0, 1.0, ".png")
    assert not passes_through(data, 1, 1.0, ".png")
    assert not passes_through(data, 0, 2.0, ".png")
    assert not passes_through(data, 0, 1.0, ".jpg")


def test_photo_bytes_binary_base64_and_limits():
    data = ASTRONAUT.read_bytes()
    assert photo_bytes(data) == (data, False)
    assert photo_bytes(base64.b64encode(data)) == (data, True)
    assert photo_bytes(b"data:image/png;base64," + base64.b64encode(data)) == (data, True)
    assert answer_bytes(data, True) == base64.b64encode(data) and answer_bytes(data, False) == data
    with pytest.raises(ImageError, match="IMAGE is required"):
        photo_bytes(None)
    with pytest.raises(ImageError, match="exceeds the limit"):
        photo_bytes(data, limit=len(data) - 1)
    with pytest.raises(ImageError, match="exceeds the limit"):
        photo_bytes(base64.b64encode(data), limit=len(data) - 1)


def test_preprocess_is_given_every_option_and_ensembles_describe_their_tensors():
    for service in SERVICES.values():
        configs = model_configs("cpu", [service.restorer])
        job, gate = configs[service.job], configs[service.ensemble]
        (preprocess,) = [s for s in job.ensemble_scheduling.step if s.model_name == PREPROCESS.name]
        checked = {t.name for t in service.inputs if t.name in RANGES or t.name == "OUTPUT_FORMAT"}
        assert checked <= set(preprocess.input_map) and TIMEOUT.name in checked   # all checked up front
        gate_sends = {"FACE_SIZE", "FACE_TEMPLATE"}
        assert set(preprocess.input_map) <= {t.name for t in service.inputs} | gate_sends   # nothing the job lacks
        assert all(preprocess.input_map[n] == n for n in gate_sends)   # the gate's crop reaches preprocess
        (faces,) = [s for s in job.ensemble_scheduling.step if s.model_name == service.faces.name]
        assert faces.input_map["CANCEL_FLAG"] == "CANCEL_FLAG"   # the gate's flag reaches the faces step
        assert [t.name for t in gate.input] == [t.name for t in service.inputs]   # clients never name the flag
        for spec in service.inputs + service.outputs:
            assert gate.parameters[spec.name].string_value == spec.help


def test_instances_and_queue_policy_are_rendered_from_the_capacity(capsys):
    configs = model_configs("cpu", capacity=Capacity(python_instances=3, network_instances=2, max_queue_size=5,
                                                     queue_timeout_s=2.5, max_pixels=12_000_000))
    assert configs[PREPROCESS.name].parameters["max_pixels"].string_value == "12000000"   # serve --max-pixels
    for name in PYTHON_MODELS:
        assert configs[name].instance_group[0].count == 3
        policy = configs[name].dynamic_batching.default_queue_policy
        assert policy.max_queue_size == 5 and policy.default_timeout_microseconds == 2_500_000
        assert not configs[name].dynamic_batching.preferred_batch_size and configs[name].max_batch_size == 0
    assert all(configs[name].instance_group[0].count == 2 for name in CONTRACTS if name in configs)
    for target, python in (("cpu", 1), ("gpu", 4)):   # the defaults
        config = model_configs(target)[PREPROCESS.name]
        assert config.instance_group[0].count == python
        assert config.dynamic_batching.default_queue_policy.max_queue_size == Capacity().max_queue_size > 0
    for argv, words in ((["--python-instances", "0"], "python instances must be >= 1, got 0"),
                        (["--network-instances", "-1"], "network instances must be >= 1"),
                        (["--max-queue-size", "-1"], "max queue size must be >= 0"),
                        (["--queue-timeout", "nan"], "queue timeout must be in [0, 600]"),
                        (["--max-pixels", "0"], "max pixels must be >= 1, got 0"),
                        (["--admin-key-file", "/nonexistent/key"], "/nonexistent/key: cannot read the admin key")):
        assert main(["serve", "--render", "cpu", *argv]) == 2
        assert words in capsys.readouterr().err
