"""Settings from environment variables and an optional TOML file; never from arguments.

The client secret is deliberately not a command-line option: arguments show up in ``ps``, shell
history and CI logs. Environment variables win over the file, so a cron job can override one
setting without editing the file.
"""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import attrs
import platformdirs

from .._environment import PRODUCTION, STAGING, Environment
from .._errors import ConfigurationError
from .._oauth import OAuthClient, normalise_scopes
from ..stores import FileTokenStore, TokenStore, validate_key
from ._exits import USAGE, CommandError

__all__ = ["Settings", "load_settings", "open_store"]

APP_NAME: Final = "actionstep-async"
CONFIG_VARIABLE: Final = "ACTIONSTEP_CONFIG"
DEFAULT_SCOPES: Final = ("all",)

# Setting name -> environment variable. The TOML file uses the setting names as keys.
VARIABLES: Final = {
    "client_id": "ACTIONSTEP_CLIENT_ID",
    "client_secret": "ACTIONSTEP_CLIENT_SECRET",
    "redirect_uri": "ACTIONSTEP_REDIRECT_URI",
    "environment": "ACTIONSTEP_ENVIRONMENT",
    "token_store": "ACTIONSTEP_TOKEN_STORE",
    "token_key": "ACTIONSTEP_TOKEN_KEY",
    "scopes": "ACTIONSTEP_SCOPES",
    "hook_secret": "ACTIONSTEP_HOOK_SECRET",
}


def default_config_path() -> Path:
    """``config.toml`` in the user's config directory (``~/.config/actionstep-async`` on Linux)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_token_directory() -> Path:
    """Where tokens live unless ``ACTIONSTEP_TOKEN_STORE`` says otherwise."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "tokens"


@attrs.frozen
class Settings:
    """Every setting with where it came from; ``None`` means not configured."""

    values: Mapping[str, str] = attrs.field(repr=False)
    config_path: Path

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def require(self, name: str) -> str:
        """The setting, or a CommandError that names the variable and the file key to set."""
        value = self.values.get(name)
        if value:
            return value
        raise CommandError(
            f'{VARIABLES[name]} is not set: export it, or put {name} = "..." in {self.config_path}',
            USAGE,
        )

    @property
    def token_key(self) -> str:
        key = self.values.get("token_key") or "default"
        try:
            return validate_key(key)
        except ConfigurationError as exc:
            raise CommandError(f"{VARIABLES['token_key']}: {exc}", USAGE) from exc

    @property
    def scopes(self) -> tuple[str, ...]:
        raw = self.values.get("scopes")
        if not raw:
            return DEFAULT_SCOPES
        try:
            return normalise_scopes(raw.replace(",", " "))
        except ConfigurationError as exc:
            raise CommandError(f"{VARIABLES['scopes']}: {exc}", USAGE) from exc

    def environment(self) -> Environment:
        """``production`` (default), ``staging``, or the loopback URL of a FakeActionstep."""
        value = (self.values.get("environment") or "production").strip()
        if value.lower() == "production":
            return PRODUCTION
        if value.lower() == "staging":
            return STAGING
        if value.startswith(("http://", "https://")):
            try:
                return Environment.local(value)
            except ConfigurationError as exc:
                raise CommandError(
                    f"{VARIABLES['environment']}: {exc} (only a local fake server may be given"
                    " as a URL)",
                    USAGE,
                ) from exc
        raise CommandError(
            f"{VARIABLES['environment']} must be production, staging or the http://127.0.0.1:PORT"
            f" URL of a fake server, not {value!r}",
            USAGE,
        )

    def oauth_client(self) -> OAuthClient:
        """The registered application; needs client id, secret and redirect URI."""
        try:
            return OAuthClient(
                client_id=self.require("client_id"),
                client_secret=self.require("client_secret"),
                redirect_uri=self.require("redirect_uri"),
                environment=self.environment(),
            )
        except ConfigurationError as exc:
            raise CommandError(str(exc), USAGE) from exc


def _read_file(path: Path, *, explicit: bool) -> dict[str, str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise CommandError(
                f"{CONFIG_VARIABLE} names {path}, which does not exist", USAGE
            ) from None
        return {}
    except OSError as exc:
        raise CommandError(f"cannot read the config file {path}: {exc.strerror}", USAGE) from exc
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path} is not valid TOML: {exc}", USAGE) from exc
    unknown = sorted(set(document) - set(VARIABLES))
    if unknown:
        raise CommandError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(VARIABLES)}",
            USAGE,
        )
    values: dict[str, str] = {}
    for name, value in document.items():
        if name == "scopes" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = " ".join(value)
        if not isinstance(value, str):
            raise CommandError(f"{path}: {name} must be a string", USAGE)
        values[name] = value
    if "client_secret" in values and _readable_by_others(path):
        sys.stderr.write(
            f"warning: {path} holds the client secret and is readable by other users;"
            f" run: chmod 600 {path}\n"
        )
    return values


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the TOML file (if any) with the environment, the environment winning."""
    env = os.environ if environ is None else environ
    explicit = env.get(CONFIG_VARIABLE)
    path = Path(explicit).expanduser() if explicit else default_config_path()
    values = _read_file(path, explicit=bool(explicit))
    for name, variable in VARIABLES.items():
        value = env.get(variable)
        if value:
            values[name] = value
    return Settings(values=values, config_path=path)


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[TokenStore]:
    """The configured token store: a directory (default in the user data dir) or a Redis URL."""
    location = settings.get("token_store") or str(default_token_directory())
    if location.startswith(("redis://", "rediss://", "unix://")):
        async with _redis_store(location) as store:
            yield store
        return
    # expanduser reads only the environment, never the disk.
    directory = Path(location).expanduser()  # noqa: ASYNC240
    try:
        store = FileTokenStore(directory)
    except ConfigurationError as exc:
        raise CommandError(f"{VARIABLES['token_store']}: {exc}", USAGE) from exc
    yield store


@asynccontextmanager
async def _redis_store(url: str) -> AsyncIterator[TokenStore]:
    try:
        import redis.asyncio as redis_asyncio

        from ..stores.redis import RedisTokenStore
    except ImportError as exc:
        raise CommandError(
            f"{VARIABLES['token_store']} is a Redis URL but redis is not installed;"
            ' pip install "actionstep-async[redis]"',
            USAGE,
        ) from exc
    try:
        client = redis_asyncio.from_url(url)
    except ValueError as exc:
        # The URL may carry a password: never echo it.
        raise CommandError(f"{VARIABLES['token_store']} is not a valid Redis URL", USAGE) from exc
    try:
        yield RedisTokenStore(client)
    finally:
        await client.aclose()
