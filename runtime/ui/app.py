"""The Gradio page: upload photos and clips, pick a restorer and its options, compare before/after
(whole photo and per face; a clip's middle frame, the restored clip played), download the results
and report.json."""
from __future__ import annotations

import os
import sys
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")   # no calls home; this machine has no internet

import gradio as gr  # noqa: E402

from runtime.contracts.service import MAX_UPLOAD_BYTES  # noqa: E402
from runtime.photo_options import face_options, offered, photo_settings  # noqa: E402
from runtime.files import write_atomic  # noqa: E402
from runtime.job import JobReport, PhotoResult  # noqa: E402
from runtime.restorers import RESTORERS, RestorerOption  # noqa: E402
from runtime.restore import output_path  # noqa: E402
from runtime.ui.backends import Backend, PhotoOutcome, RestoreFailed  # noqa: E402
from runtime.video.container import VIDEO_SUFFIXES  # noqa: E402

INTRO = """# Face restoration
Upload one or more photos or clips, choose a restorer, press **Restore**. Every face is detected,
aligned, restored and pasted back (in a clip: on every frame, its audio kept). Drag the slider to
compare (a clip: its middle frame); below it, each face before and after (in-process also the
paste-back mask). Back end: **{backend}**."""


def option_control(option: RestorerOption, restorer: str | None = None) -> gr.components.Component:
    """The page control of one option, a restorer's or (restorer None) a photo option: a choice
    list, a checkbox, a slider for a bounded float, else a number."""
    label = option.name.replace("_", " ")
    elem_id = f"{restorer}-{option.name}" if restorer else option.name.replace("_", "-")
    if option.choices:
        return gr.Dropdown(list(option.choices), value=option.default, label=label, info=option.help, elem_id=elem_id)
    if option.type is bool:
        return gr.Checkbox(option.default, label=label, info=option.help, elem_id=elem_id)
    if option.type is float and option.minimum is not None and option.maximum is not None and option.default is not None:
        return gr.Slider(option.minimum, option.maximum, value=option.default, step=getattr(option, "step", None) or 0.05,
                         label=label, info=option.describe(), elem_id=elem_id)
    if option.default is None:   # optional: an empty box means "not set" (a Number box cannot be empty)
        return gr.Textbox("", label=label, info=option.help, placeholder="empty = not set", elem_id=elem_id)
    return gr.Number(value=option.default, label=label, info=option.help, minimum=option.minimum,
                     maximum=option.maximum, precision=0 if option.type is int else None, elem_id=elem_id)


def read_settings(options: tuple[RestorerOption, ...], values: list[Any]) -> dict[str, Any]:
    """The page's values as typed, checked restorer settings; ValueError names a bad one."""
    settings = {}
    for option, value in zip(options, values):
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            value = None
        else:
            try:
                value = option.type(value)
            except ValueError:
                raise ValueError(f"{option.name} must be a {option.type.__name__}, not {value!r}") from None
        option.check(value)
        settings[option.name] = value
    return settings


def face_gallery(outcome: PhotoOutcome) -> list[tuple[Any, str]]:
    """(image, caption) per face: aligned crop, restored crop, paste mask (in-process), or the
    detected face before and after (served)."""
    items = []
    for i, face in enumerate(outcome.faces, 1):
        if face.mask is None:
            items += [(face.before, f"face {i}: detected (input)"), (face.after, f"face {i}: restored (served)")]
        else:
            items += [(face.before, f"face {i}: aligned crop"), (face.after, f"face {i}: restored crop"),
                      (face.mask, f"face {i}: paste mask")]
    return items


class Page:
    """The page's handlers over one back end; results are written under `work_dir`/run-<id>/."""

    def __init__(self, backend: Backend, work_dir: Path) -> None:
        self.backend, self.work_dir = backend, work_dir
        self.restorers = backend.restorers()
        self.options = {r: backend.options(r) for r in self.restorers}

    def restore(self, files: list[str] | None, restorer: str, *values, progress=gr.Progress()):
        """Restore every uploaded photo and clip; errors become page messages, never a stack trace. `values`:
        the photo options' controls (offered("page")), then every restorer's."""
        empty = ([], gr.update(choices=[], value=None), None, [], None, None)
        if not files:
            return ("Upload one or more photos or clips first.", *empty)
        try:
            photo = photo_settings(read_settings(offered("page"), list(values[:len(offered("page"))])))
            settings = self._settings(restorer, values[len(offered("page")):])
            face = face_options(photo, RESTORERS[restorer].face_size if restorer in RESTORERS else 512)
        except (ValueError, TypeError) as exc:
            return (f"**error**: {exc}", *empty)
        run_dir = self.work_dir / f"run-{uuid.uuid4().hex[:8]}"
        report = JobReport(restorer, self.backend.description, settings={**photo, **settings},
                           served=self.backend.served)
        outcomes, results, lines = [], report.photos, []
        for i, path in enumerate(files):
            name = Path(path).name

            def step(fraction: float, desc: str, i=i) -> None:
                progress((i + fraction) / len(files), desc=desc)

            try:
                if Path(name).suffix.lower() in VIDEO_SUFFIXES:
                    filename = unique_name(output_path(Path(), Path(name)).name, [o.filename for o in outcomes])
                    outcome = self.backend.restore_clip(name, Path(path), run_dir / filename, restorer, settings,
                                                        face, step)
                else:
                    outcome = self.backend.restore(name, Path(path).read_bytes(), restorer, settings, face, step)
            except (RestoreFailed, OSError) as exc:
                results.append(PhotoResult(input=name, error=str(exc)))
                lines.append(f"**error**: {exc}")
                gr.Warning(str(exc))
                continue
            except Exception as exc:  # a bug must not reach the page as a trace; the log keeps it
                traceback.print_exc(file=sys.stderr)
                results.append(PhotoResult(input=name, error=f"{type(exc).__name__}: {exc}"))
                lines.append(f"**error**: {name}: internal error ({type(exc).__name__}: {exc})")
                continue
            outcome.filename = unique_name(outcome.filename, [o.filename for o in outcomes])
            outcome.result.output = outcome.filename
            if outcome.encoded is not None:   # a clip is written by its back end
                write_atomic(run_dir / outcome.filename, outcome.encoded)
            outcomes.append(outcome)
            results.append(outcome.result)
            lines += outcome.notes
            if not outcome.result.faces:
                lines.append(f"note: {name}: no face found; given back unchanged")
        if outcomes:
            report.provenance = self.backend.provenance(restorer, settings)
        report.wall_s = sum(r.seconds for r in results)
        report.write(run_dir)
        status = "\n\n".join([f"**{report.summary('the downloads')}**"] + report.notices() + list(dict.fromkeys(lines)))   # a note repeated per file is shown once
        downloads = [str(run_dir / o.filename) for o in outcomes] + [str(run_dir / "report.json")]
        if not outcomes:
            return (status, [], gr.update(choices=[], value=None), None, [], downloads, None)
        names = [o.filename for o in outcomes]
        first = outcomes[0]
        clip = next((str(run_dir / o.filename) for o in outcomes if o.encoded is None), None)
        return (status, outcomes, gr.update(choices=names, value=names[0]), (first.before, first.after),
                face_gallery(first), downloads, clip)

    def _settings(self, restorer: str, values: tuple) -> dict[str, Any]:
        """The values of `restorer`'s own controls (the page holds every restorer's controls in a row)."""
        start = 0
        for r in self.restorers:
            if r == restorer:
                return read_settings(self.options[r], list(values[start:start + len(self.options[r])]))
            start += len(self.options[r])
        raise ValueError(f"unknown restorer {restorer!r}; choose from {self.restorers}")

    @staticmethod
    def show(outcomes: list[PhotoOutcome], filename: str | None):
        """Before/after and faces of the chosen photo."""
        for o in outcomes or []:
            if o.filename == filename:
                return (o.before, o.after), face_gallery(o)
        return None, []

    def visible_options(self, restorer: str) -> list:
        """Show only the chosen restorer's option group."""
        return [gr.update(visible=r == restorer) for r in self.restorers]


def unique_name(name: str, taken: list[str]) -> str:
    """`name`, or `stem-2.ext`, `stem-3.ext`... when two uploads share a name."""
    stem, suffix, n = Path(name).stem, Path(name).suffix, 2
    while name in taken:
        name, n = f"{stem}-{n}{suffix}", n + 1
    return name


def build_app(backend: Backend, work_dir: Path | None = None) -> gr.Blocks:
    """The page over `backend`; results go under `work_dir` (default: a new temporary folder)."""
    page = Page(backend, work_dir or Path(tempfile.mkdtemp(prefix="facerestore-ui-")))
    default = "safm" if "safm" in page.restorers else page.restorers[0]
    with gr.Blocks(title="facerestore", analytics_enabled=False) as app:
        gr.Markdown(INTRO.format(backend=backend.description))
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label=f"Photos (PNG, JPEG, WebP, BMP, TIFF) and clips (MP4, MOV, MKV, WebM, AVI); "
                                      f"at most {MAX_UPLOAD_BYTES // 2**20} MiB each",
                                file_count="multiple", type="filepath", elem_id="photos")
                restorer = gr.Radio(page.restorers, value=default, label="Restorer", elem_id="restorer")
                groups, controls = [], []
                for r in page.restorers:
                    with gr.Group(visible=r == default) as group:
                        controls += [option_control(o, r) for o in page.options[r]]
                    groups.append(group)
                photo_controls = [option_control(o) for o in offered("page")]
                run = gr.Button("Restore", variant="primary", elem_id="restore")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                choice = gr.Dropdown([], label="Photo", elem_id="photo-choice")
                compare = gr.ImageSlider(label="Before / after", type="numpy", format="png", interactive=False,
                                         elem_id="compare")
                faces = gr.Gallery(label="Faces", columns=3, format="png", object_fit="contain", elem_id="faces")
                clip = gr.Video(label="Restored clip (the first one uploaded)", format=None, interactive=False,
                                elem_id="clip")
                downloads = gr.File(label="Download: restored photos, clips and report.json", file_count="multiple",
                                    interactive=False, elem_id="downloads")
        outcomes = gr.State([])
        restorer.change(page.visible_options, restorer, groups)
        run.click(page.restore, [files, restorer, *photo_controls, *controls],
                  [status, outcomes, choice, compare, faces, downloads, clip])
        choice.input(page.show, [outcomes, choice], [compare, faces])
    return app


def launch(backend: Backend, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> gr.Blocks:
    """Serve the page on host:port (uploads capped at the CLI's and the server's byte limit)."""
    app = build_app(backend)
    app.queue(default_concurrency_limit=1)   # one restoration at a time: the back end runs one photo batch
    app.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD_BYTES, show_error=False,
               inbrowser=False, share=False, ssr_mode=False, prevent_thread_lock=not block)
    return app
