"""`sluice local-model`: llama.cpp's server with a bundled GGUF model, on loopback."""

from __future__ import annotations

import click

from sluice.localmodel.models import BUNDLED, LocalModelError, resolve
from sluice.localmodel.server import LocalServerConfig, serve_forever


@click.command("local-model")
@click.option(
    "--model",
    default="smollm2",
    show_default=True,
    help=f"A bundled model ({', '.join(sorted(BUNDLED))}) or a path to a .gguf file.",
)
@click.option("--sha256", default=None, help="Expected digest of a .gguf given by path.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True)
@click.option(
    "--ctx", "n_ctx", type=int, default=4096, show_default=True, help="Context, all slots."
)
@click.option("--parallel", type=int, default=1, show_default=True, help="Concurrent slots.")
@click.option("--threads", type=int, default=0, help="CPU threads (default: all cores).")
@click.option("--alias", default=None, help="Model name clients send (default: the model's).")
def local_model(
    model: str,
    sha256: str | None,
    host: str,
    port: int,
    n_ctx: int,
    parallel: int,
    threads: int,
    alias: str | None,
) -> None:
    """Serve a real model with llama.cpp (OpenAI-compatible) until SIGTERM.

    Prints the base URL to use as an `openai`-kind provider's api_base, e.g. with
    examples/local-llm.yaml: LOCAL_LLM_URL=<url> sluice serve --config examples/local-llm.yaml
    """
    try:
        cfg = LocalServerConfig(resolve(model, sha256), host, port, n_ctx, parallel, threads, alias)

        def announce(url: str) -> None:
            click.echo(url)
            click.echo(
                f"llama.cpp serving {cfg.alias or cfg.model.name} ({cfg.model.path.name}, "
                f"n_ctx {n_ctx} over {parallel} slot(s)); stop with Ctrl-C or SIGTERM",
                err=True,
            )

        serve_forever(cfg, announce)
    except LocalModelError as exc:
        raise click.ClickException(str(exc)) from None
