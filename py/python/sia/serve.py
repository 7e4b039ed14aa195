"""``python -m sia.serve``: :class:`sia.asgi.App` under uvicorn, with the arguments of
``sia serve`` that every host of the engine shares::

    python -m sia.serve [--config FILE] [--db FILE] [--listen HOST:PORT] [--base-url URL] [PATH ...]

PATHs are indexed before serving. Prints ``listening on BASE_URL`` to standard output when
the socket accepts connections; logs one line per request to standard error. Stops on
SIGINT or SIGTERM after open responses finish. Needs uvicorn (``pip install uvicorn``).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
import tomllib
from collections.abc import Sequence

from . import Engine, SiaError
from .asgi import App


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sia.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", help="files and folders to index before serving")
    p.add_argument("--config", help="configuration file (TOML; relative paths against its folder)")
    p.add_argument("--db", help="index database, overriding the configuration's")
    p.add_argument("--listen", help="HOST:PORT to listen on (default: the configuration's, else 127.0.0.1:8080)")
    p.add_argument("--base-url", help="public base URL (default: the configuration's, else http://LISTEN)")
    return p.parse_args(argv)


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SystemExit(f"listen address {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configured_listen(config: str | None) -> str | None:
    """``[server] listen`` of the configuration file (the engine checks the rest)."""
    if config is None:
        return None
    try:
        with open(config, "rb") as f:
            listen = tomllib.load(f).get("server", {}).get("listen")
    except (OSError, tomllib.TOMLDecodeError):
        return None  # the engine reports the file's problem when it opens it
    return listen if isinstance(listen, str) else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        import uvicorn
    except ImportError:
        print("python -m sia.serve needs uvicorn: pip install uvicorn", file=sys.stderr)
        return 2
    listen = args.listen or configured_listen(args.config) or "127.0.0.1:8080"
    host, port = split_listen(listen)
    if args.config is None and not is_loopback(host):
        print(
            f"without --config (trusted issuers) every study would be served to anyone; "
            f"refused on {listen}, which is not a loopback address",
            file=sys.stderr,
        )
        return 1
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        print(f"cannot listen on {listen}: {e}", file=sys.stderr)
        return 1
    sock.listen(1024)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    # Resources are addressed under the URL clients reach (the port bound when 0 asked).
    base_url = args.base_url or (None if args.config else f"http://{shown}:{sock.getsockname()[1]}")
    try:
        engine = Engine(args.db, args.config, base_url=base_url)
    except SiaError as e:
        print(f"sia.serve: {e}", file=sys.stderr)
        return 1
    base_url = engine.base_url
    if args.paths:
        report = engine.index(args.paths)
        logging.info("%s", report)
        for c in report.conflicts:
            logging.warning("conflict: %s; not indexed", c)
    if args.config is None:
        logging.warning("no --config: every request is served without a token")
    config = uvicorn.Config(App(engine), log_level="info", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    # The socket already accepts connections (they wait in its backlog until uvicorn
    # takes them), so the banner can say so now.
    print(f"sia ASGI (uvicorn): listening on {base_url}", flush=True)
    print(f"  FHIR ImagingStudy    {base_url}/fhir/ImagingStudy", flush=True)
    print(f"  DICOMweb             {base_url}/dicom-web", flush=True)
    print(f"  health               {base_url}/healthz", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
