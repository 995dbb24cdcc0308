"""Token sources: the base every source implements, the token's clean-up, and the two simple
sources (a value fixed at start: inline or from an environment variable; a watched file)."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar

from .._config import Secret
from .._exceptions import AuthError
from .._watched_file import WatchedFile

__all__ = [
    "MAX_DETAIL_CHARS",
    "FileSource",
    "Source",
    "StaticSource",
    "clean_token",
    "read_secret_file",
    "token_in",
]

# Error texts of a source's server are short; cap what we copy into our own messages.
MAX_DETAIL_CHARS = 200


def clean_token(raw: str, where: str) -> Secret:
    """Turn what a source holds into a header-safe token, or say what is wrong with it.

    A leading `Bearer ` is dropped: OpenMetadata clients prepend it themselves, so people
    paste it along. Anything but visible ASCII would break (or inject into) the header.
    """
    value = raw.strip()
    if value[:6].lower() == "bearer" and (len(value) == 6 or value[6].isspace()):
        value = value[6:].lstrip()
    if not value:
        raise AuthError(f"{where} is empty: put the OpenMetadata bot's JWT there")
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in value):
        raise AuthError(
            f"{where} does not hold a single token (it has spaces, line breaks or non-ASCII "
            "characters): store only the OpenMetadata bot's JWT there"
        )
    return Secret(value)


def token_in(doc: object, field: str, where: str, *, noun: str, fix: str) -> Secret:
    """The token under `field` of a secret's JSON document (Vault's data, an AWS secret).

    `noun` is what the store calls `field` ("key", "field"); `fix` ends the message when the
    field is missing (which key to set). The message names the keys present, never a value."""
    if not isinstance(doc, dict) or field not in doc:
        keys = ", ".join(sorted(map(str, doc))) if isinstance(doc, dict) else "none"
        raise AuthError(f"{where} has no {noun} {field!r} ({noun}s: {keys}): {fix}")
    value = doc[field]
    if not isinstance(value, str):
        raise AuthError(f"{where}: {noun} {field!r} is not a string")
    return clean_token(value, f"{where}, {noun} {field!r}")


class Source(abc.ABC):
    """Where a token comes from. `where` names it in messages; never holds the value."""

    kind: str = ""  # the metrics label
    # Whether fetching again can give a different value while the relay runs.
    rotatable: ClassVar[bool] = True

    def __init__(self, where: str) -> None:
        self.where = where

    def changed(self) -> bool:
        """Cheap, synchronous: has the source changed since the last fetch?"""
        return False

    @abc.abstractmethod
    async def fetch(self) -> Secret:
        """The current token; `AuthError` naming the source and the fix otherwise."""

    async def aclose(self) -> None:
        """Release what the source holds (sessions, clients)."""
        return None


class StaticSource(Source):
    """A value fixed when the relay starts: inline config or an environment variable."""

    rotatable = False

    def __init__(self, kind: str, where: str, raw: str, missing: str) -> None:
        super().__init__(where)
        self.kind = kind
        self._raw = Secret(raw)
        self._missing = missing

    async def fetch(self) -> Secret:
        if not self._raw:
            raise AuthError(self._missing)
        return clean_token(self._raw.reveal(), self.where)


def read_secret_file(file: Path | WatchedFile, where: str) -> str:
    """The text of a secret file, or `AuthError` naming `where` and the fix."""
    try:
        return file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise AuthError(f"{where} does not exist: mount the secret there or fix the path") from None
    except PermissionError:
        raise AuthError(
            f"{where} is not readable (permission denied): let the relay's user read it"
        ) from None
    except IsADirectoryError:
        raise AuthError(f"{where} is a directory: point it at the file holding the token") from None
    except UnicodeDecodeError:
        raise AuthError(f"{where} is not UTF-8 text: store only the token there") from None
    except OSError as exc:
        raise AuthError(f"{where} cannot be read ({exc.strerror}): check the mount") from None


class FileSource(Source):
    """A token file (`openmetadata.jwt_token_file`), re-read whenever it changes."""

    kind = "jwt_token_file"

    def __init__(self, path: Path) -> None:
        super().__init__(f"openmetadata.jwt_token_file {str(path)!r}")
        self._file = WatchedFile(path)

    def changed(self) -> bool:
        return self._file.changed()

    async def fetch(self) -> Secret:
        return clean_token(read_secret_file(self._file, self.where), self.where)
