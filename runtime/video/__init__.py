"""Clips: PyAV transcode (container), face tracking and smoothing, restore, served clips. This
package module itself imports nothing heavy: which suffixes are clips and the clip error, for the
photo path (`restore` of photos starts without PyAV)."""

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}


class VideoError(ValueError):
    """A clip that cannot be read or written; the message names the file and the cause."""
