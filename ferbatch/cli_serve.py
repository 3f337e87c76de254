"""``ferbatch serve``: the HTTP endpoint on Ray Serve (:mod:`ferbatch.serve`). ``COMMANDS``
lists the commands for ``cli.py``."""

from __future__ import annotations

import dataclasses
import threading

import click

from .config import BACKENDS, ServeConfig
from .devices import DEVICE_HELP
from .errors import FerbatchError

ENDPOINTS = """Endpoints:

\b
GET  /healthz            liveness (no token needed)
GET  /v1/models          model name, sha256, labels, preprocessing, temperature
POST /v1/analyze/image   JPEG/PNG/WebP body or multipart field 'file' -> faces as JSON
POST /v1/analyze/video   short clip (body or multipart), ?fps=N or ?every=N -> per-face
                         timeline as JSON, or Parquet with
                         'Accept: application/vnd.apache.parquet'

Errors are JSON {"error": ..., "status": N}: 415 not a supported type, 413 body too large,
400 undecodable or bad parameter, 401 missing or wrong token."""


@click.command("serve", epilog=ENDPOINTS)
@click.option("--host", default=ServeConfig.host, show_default=True,
              help="Address to listen on (0.0.0.0: every interface; use --token-file then).")
@click.option("--port", type=click.IntRange(1, 65535), default=ServeConfig.port, show_default=True,
              help="TCP port of the HTTP endpoint.")
@click.option("--model", default=ServeConfig.model, metavar="NAME|PATH",
              help="Emotion model: a bundled model's name (`ferbatch models`) or a checkpoint "
                   "file.  [default: default]")
@click.option("--replicas", type=click.IntRange(min=1), default=ServeConfig.replicas, show_default=True,
              help="Copies of the model server (Ray Serve replicas), each loading the models once.")
@click.option("--cpus-per-replica", type=click.FloatRange(min=0), default=ServeConfig.cpus_per_replica,
              show_default=True, help="CPUs each replica reserves in Ray.")
@click.option("--gpus-per-replica", type=click.FloatRange(min=0), default=ServeConfig.gpus_per_replica,
              show_default=True, help="GPUs each replica reserves in Ray (give 1 with --device cuda).")
@click.option("--device", default=ServeConfig.device, show_default=True, help=DEVICE_HELP)
@click.option("--backend", type=click.Choice(BACKENDS), default=ServeConfig.backend,
              show_default=True, help="Classification backend (onnxruntime: CPU only).")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True),
              default=ServeConfig.max_body_mb, show_default=True,
              help="Largest request body accepted, in MiB (413 past it).")
@click.option("--max-batch", type=click.IntRange(min=1), default=ServeConfig.max_batch_size,
              show_default=True, help="Images of concurrent requests analysed together (@serve.batch).")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding a bearer token: requests then need 'Authorization: Bearer "
                   "<token>' (401 otherwise).  [default: no token]")
@click.option("--address", default=None, metavar="ADDR",
              help="Ray cluster to join: auto, HOST:PORT (default: $RAY_ADDRESS, else a private "
                   "local instance).")
def serve_command(host: str, port: int, model: str | None, replicas: int, cpus_per_replica: float,
                  gpus_per_replica: float, device: str, backend: str, max_body_mb: float,
                  max_batch: int, token_file: str | None, address: str | None) -> None:
    """Serve emotion analysis of images and short clips over HTTP (Ray Serve), until Ctrl-C."""
    from .logs import configure_console
    from .runner.ray_setup import connect

    configure_console(0)
    try:
        from .serve.server import read_token, start, stop
    except ImportError as exc:
        raise click.ClickException(f"ferbatch serve needs the serve extra "
                                   f"(pip install 'ferbatch[serve]'): {exc}") from exc
    try:
        settings = ServeConfig(host=host, port=port, replicas=replicas,
                               cpus_per_replica=cpus_per_replica, gpus_per_replica=gpus_per_replica,
                               model=model, device=device, max_body_mb=max_body_mb,
                               backend=backend, max_batch_size=max_batch)
        settings.run_config()  # a bad --model / --backend / --device fails here, not in a replica
        if token_file:
            settings = dataclasses.replace(settings, token=read_token(token_file))
        with connect(address):
            try:  # an interrupt while Serve starts must remove it too
                url = start(settings)
                click.echo(f"ferbatch serve: listening on {url} ({replicas} replica(s)"
                           f"{', token required' if settings.token else ''}); Ctrl-C stops it",
                           err=True)
                threading.Event().wait()
            finally:
                stop()
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc


COMMANDS = [serve_command]
