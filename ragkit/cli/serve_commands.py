"""`ragkit serve` and `ragkit mcp`: the server front ends, imported only when one of them runs."""

from __future__ import annotations

import ipaddress
import os

import typer

from ..errors import UsageError
from ..storage.location import shown as shown_location
from .typer_app import IndexOpt, LinkOpt, app, check_links, err, open_index

TOKEN_ENV = "RAGKIT_SERVE_TOKEN"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quiet_sdk() -> None:
    import logging

    for name in ("mcp", "uvicorn.error", "httpx"):  # their INFO lines are not for a user
        logging.getLogger(name).setLevel(logging.WARNING)


def _served(index_path: str, link_template: str | None, answerer: str):  # noqa: ANN202 - serve imports lazily
    try:
        from ..serve.state import Served
    except ImportError as exc:
        raise UsageError(f"the server needs its extra: pip install \"ragkit[serve]\" ({exc.name} is missing)") from None
    open_index(index_path)  # builds the default index on first use, like search
    _quiet_sdk()
    return Served(index_path, link_template, answerer)


@app.command()
def serve(
    index_path: str = IndexOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs --token."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free port)."),
    token: str | None = typer.Option(None, "--token", help=f"Bearer token every request must carry (env {TOKEN_ENV})."),
    cors: str | None = typer.Option(None, "--cors", help="Allow this browser origin to call the API (no CORS headers otherwise)."),
    answerer: str = typer.Option("extractive", "-a", "--answerer", help="extractive or llm[:model] for Ask."),
    link_template: str | None = LinkOpt,
) -> None:
    """Serve a web page, a JSON API (/api/...) and an MCP endpoint (/mcp) over one index, until Ctrl-C."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if not _loopback(host) and not token:
        raise UsageError(f"--host {host} is reachable from other machines: pass --token SECRET (or set {TOKEN_ENV})")
    check_links(link_template)
    served = _served(index_path, link_template, answerer)
    import uvicorn

    from ..serve.app import create_app

    application = create_app(served, token=token, cors=cors, host=host)
    config = uvicorn.Config(application, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    original = server.startup

    async def startup(sockets=None) -> None:  # noqa: ANN001 - the URL once bound, with the real port when --port 0
        await original(sockets=sockets)
        bound = next((s.getsockname()[1] for srv in server.servers for s in srv.sockets), port)
        err(f"ragkit serving {shown_location(index_path)} at http://{shown}:{bound}/  (API /api/search, MCP /mcp; Ctrl-C stops)")

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the Ctrl-C it caught
        pass
    err("ragkit server stopped")


@app.command()
def mcp(
    index_path: str = IndexOpt,
    link_template: str | None = LinkOpt,
) -> None:
    """Run the MCP server over stdio, for agent hosts that launch it as a subprocess."""
    check_links(link_template)
    served = _served(index_path, link_template, "extractive")
    from ..serve import mcp_tools
    from ..serve.state import Limits

    mcp_tools.build(served, Limits()).run("stdio")
