"""`make typecheck`: mypy on the TensorRT-touching modules against polygraphy's source and the
real TensorRT Python API (the `tensorrt-stubs` wheel, generated from TensorRT's bindings; the full
libraries are not installable without pypi.nvidia.com and a GPU).

pybind11-stubgen wrote a few lines of that wheel that are not Python (parameters named `in`, a
parameter without a default after defaulted ones), and mypy stops at a syntax error; its `bool`
annotations name the module's `trt.bool` data type, which would make every such type Any. A copy
with only those mended is put on mypy's path; every name and signature stays as TensorRT has it.

    python -m tests.typecheck [FILE ...]     # default: the TensorRT-touching modules
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TYPECHECKED = ("export/tensorrt_build.py", "export/verify.py", "runtime/tensorrt_session.py", "runtime/engines.py")
STUBS = "tensorrt-stubs"


def _mend_signature(line: str) -> str:
    """One stub line as valid Python: on `def` lines, keyword parameter names get a trailing `_`,
    parameters without a default after a defaulted one get `= ...`, `bool` is `builtins.bool`."""
    match = re.match(r"(\s*def \w+\()(.*)(\) ->.*)", line)
    if match is None:
        return line
    head, params, tail = (re.sub(r"(?<![\w.'`])bool(?![\w'`])", "builtins.bool", part) for part in match.groups())
    params = re.sub(r"(^|, )(in|is|from|lambda|class|def|pass|not|and|or)(: )", r"\1\2_\3", params)
    mended, seen_default, depth, start = [], False, 0, 0
    for i, ch in enumerate(params + ","):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            param = params[start:i]
            seen_default = seen_default or "=" in param
            if seen_default and "=" not in param and not param.strip().startswith("*"):
                param += " = ..."
            mended.append(param)
            start = i + 1
    return head + ",".join(mended) + tail


def mended_stubs(dest: Path) -> Path:
    """The installed tensorrt-stubs copied into `dest` with its syntax errors mended; the folder
    to put on MYPYPATH. SystemExit naming the install command when the wheel is missing."""
    try:
        dist = metadata.distribution(STUBS)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"{STUBS} is not installed: `make install`, or "
                         f"pip install --no-deps {STUBS} (its metadata pulls the full TensorRT)") from None
    for file in dist.files or []:
        if file.suffix == ".pyi":
            out = dest / file
            out.parent.mkdir(parents=True, exist_ok=True)
            lines = Path(dist.locate_file(file)).read_text().split("\n")
            text = "\n".join(_mend_signature(line) for line in lines)
            out.write_text(text.replace("from __future__ import annotations\n",
                                        "from __future__ import annotations\nimport builtins\n", 1))
    return dest


def run_mypy(files: list[str]) -> subprocess.CompletedProcess:
    """mypy with the project's configuration (pyproject [tool.mypy]) on `files`, from the
    repository root, TensorRT's mended stubs first on its path; output in `.stdout`."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MYPYPATH": str(mended_stubs(Path(tmp)))}
        return subprocess.run([sys.executable, "-m", "mypy", *files], cwd=ROOT, env=env,
                              capture_output=True, text=True)


def main(argv: list[str]) -> int:
    result = run_mypy(argv or list(TYPECHECKED))
    print(result.stdout + result.stderr, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
