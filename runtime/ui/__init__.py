"""`facerestore ui`: a web page (Gradio) to restore photos by hand, in-process or through a
running Triton server. The page is in app.py, its two back ends in backends.py."""
