"""Finding and connecting to the engine's servers.

Beside `settings.py`: the worker and the clients in `starter/` both connect, and the
worker imports nothing from `starter/`. Settings win. With none set, the addresses that a
running `visits dev` wrote to `<data_dir>/endpoints.json` are used, so a second terminal
needs no configuration.
"""

import json
from pathlib import Path

from pydantic import BaseModel
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter

from settings import Settings


class NotConfigured(Exception):
    """No server address in the settings and no running `visits dev` to borrow one from."""


class Endpoints(BaseModel):
    """Where the engine's servers answer."""

    temporal_address: str
    namespace: str = "default"
    database_url: str
    ui_url: str | None = None


def endpoints_file(settings: Settings) -> Path:
    return settings.data_dir / "endpoints.json"


def write_endpoints(settings: Settings, endpoints: Endpoints) -> None:
    path = endpoints_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(endpoints.model_dump_json(indent=2))


def _dev_endpoints(settings: Settings) -> Endpoints | None:
    path = endpoints_file(settings)
    if not path.exists():
        return None
    return Endpoints.model_validate(json.loads(path.read_text()))


def temporal_address(settings: Settings) -> str:
    if settings.temporal_address:
        return settings.temporal_address
    dev = _dev_endpoints(settings)
    if dev is None:
        raise NotConfigured(
            "No Temporal server is configured: start one with `visits dev`, "
            "or set VISITFLOW_TEMPORAL_ADDRESS."
        )
    return dev.temporal_address


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url.get_secret_value()
    dev = _dev_endpoints(settings)
    if dev is None:
        raise NotConfigured(
            "No PostgreSQL is configured: start one with `visits dev`, or set VISITFLOW_DATABASE_URL."
        )
    return dev.database_url


async def connect_temporal(settings: Settings, address: str | None = None) -> Client:
    """A Temporal client with the pydantic data converter, TLS and API key from settings."""
    tls: TLSConfig | bool = settings.temporal_tls or bool(settings.temporal_api_key)
    if settings.temporal_tls_cert or settings.temporal_tls_ca:
        tls = TLSConfig(
            server_root_ca_cert=settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None,
            client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
            client_private_key=settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key else None,
        )
    return await Client.connect(
        address or temporal_address(settings),
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
        tls=tls,
        data_converter=pydantic_data_converter,
    )
