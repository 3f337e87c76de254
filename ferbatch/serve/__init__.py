"""``ferbatch serve``: an HTTP endpoint on Ray Serve (:mod:`.app`), the per-request analysis
(:mod:`.analysis`), the HTTP plumbing (:mod:`.http`) and starting / stopping it (:mod:`.server`).

Needs the ``serve`` extra (``pip install 'ferbatch[serve]'``: ray[serve], FastAPI,
python-multipart); importing this package imports none of them.
"""
