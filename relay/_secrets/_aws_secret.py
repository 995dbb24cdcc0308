"""AWS Secrets Manager as a token source (the `aws` extra), with botocore's logs kept from
printing the secret."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._aws import require_aws
from .._config import AwsSecretConfig, Secret
from .._exceptions import AuthError
from ._source import MAX_DETAIL_CHARS, Source, clean_token, token_in

if TYPE_CHECKING:
    from types_aiobotocore_secretsmanager import SecretsManagerClient

__all__ = ["AwsSource"]


class _BotocoreRedactor(logging.Filter):
    """Drop botocore's DEBUG records that carry secrets.

    At DEBUG botocore logs whole response bodies (for GetSecretValue: the token) and the
    signed request (the session token). A relay run with `log_level = debug` must not print
    them, whatever handler is attached, so the filter sits on botocore's own loggers.
    """

    _PREFIXES = ("Response body", "Sending http request", "CanonicalRequest", "StringToSign")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self._PREFIXES))


def _redact_botocore_logs() -> None:
    for name in ("botocore.parsers", "botocore.endpoint", "botocore.auth"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _BotocoreRedactor) for f in logger.filters):
            logger.addFilter(_BotocoreRedactor())


class AwsSource(Source):
    """AWS Secrets Manager `GetSecretValue`; optional JSON `field`; standard credential chain."""

    kind = "aws_secret"

    def __init__(self, config: AwsSecretConfig, *, connect_timeout_s: float, read_timeout_s: float):
        super().__init__(f"AWS secret {config.secret_id!r} in {config.region}")
        require_aws("openmetadata.aws_secret.secret_id")
        _redact_botocore_logs()
        self._config = config
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._stack = contextlib.AsyncExitStack()
        self._client: SecretsManagerClient | None = None

    async def _get_client(self) -> SecretsManagerClient:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(
                connect_timeout=self._connect_timeout_s,
                read_timeout=self._read_timeout_s,
                retries={"max_attempts": 2, "mode": "standard"},
            )
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "secretsmanager",
                    region_name=self._config.region,
                    endpoint_url=self._config.endpoint_url or None,
                    config=config,
                )
            )
        return self._client

    async def fetch(self) -> Secret:
        from botocore import exceptions as bexc

        try:
            client = await self._get_client()
            resp = await client.get_secret_value(SecretId=self._config.secret_id)
        except bexc.ClientError as exc:
            raise AuthError(self._client_error(exc)) from None
        except (bexc.NoCredentialsError, bexc.PartialCredentialsError) as exc:
            raise AuthError(
                f"no usable AWS credentials to read {self.where} ({exc}): configure the "
                "standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
                "instance or pod role)"
            ) from None
        except (bexc.EndpointConnectionError, bexc.ConnectTimeoutError) as exc:
            raise AuthError(f"cannot reach AWS Secrets Manager for {self.where}: {exc}") from None
        except bexc.BotoCoreError as exc:
            raise AuthError(f"reading {self.where} failed: {exc}") from None
        # The stubs type SecretString as always present; the API sends one of the two.
        answer: Mapping[str, object] = resp
        text, binary = answer.get("SecretString"), answer.get("SecretBinary")
        if isinstance(text, str):
            raw = text
        elif isinstance(binary, bytes):
            try:
                raw = binary.decode("utf-8")
            except UnicodeDecodeError:
                raise AuthError(
                    f"{self.where} is binary, not text: store the token as a string"
                ) from None
        else:
            raise AuthError(f"{self.where} has no value: put the token in it")
        return self._extract(raw)

    def _extract(self, raw: str) -> Secret:
        field = self._config.field
        if not field:
            if raw.lstrip().startswith("{"):
                raise AuthError(
                    f"{self.where} holds JSON: set openmetadata.aws_secret.field to the key "
                    "holding the token"
                )
            return clean_token(raw, self.where)
        try:
            doc: Any = json.loads(raw)
        except ValueError:
            # `from None`: the decode error keeps the whole document, i.e. the secret.
            raise AuthError(
                f"{self.where} is not JSON but openmetadata.aws_secret.field = {field!r} is set: "
                "store a JSON object, or unset field for a plain-string secret"
            ) from None
        return token_in(doc, field, self.where, noun="key", fix="fix openmetadata.aws_secret.field")

    def _client_error(self, exc: Any) -> str:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "unknown"))
        message = str(error.get("Message", ""))[:MAX_DETAIL_CHARS]
        if code == "ResourceNotFoundException":
            return (
                f"AWS Secrets Manager has no {self.where}: check openmetadata.aws_secret.secret_id "
                "and region"
            )
        if code == "AccessDeniedException":
            return (
                f"access to {self.where} denied ({message}): allow secretsmanager:GetSecretValue "
                "(and kms:Decrypt for its key) to the relay's AWS identity"
            )
        if code in (
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
        ):
            return f"AWS refused the relay's credentials reading {self.where} ({code}): renew them"
        if code == "DecryptionFailure":
            return f"AWS could not decrypt {self.where} ({message}): allow kms:Decrypt on its key"
        return f"reading {self.where} failed: {code}: {message}"

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()
