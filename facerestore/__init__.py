"""The `facerestore` command line: the thin layer on top of `runtime` and `export` that glues them
(restore with its on-demand ONNX export, export, serve --render). Nothing below imports it."""
