"""AWS is optional: aiobotocore comes with the `aws` extra (`pip install 'lineage-relay[aws]'`).

A relay that never talks to AWS, or a Spark driver that only wants the plugin, does not pull
botocore. What needs it (an `[openmetadata.aws_secret]` token, `offload.s3_uri`,
`replay --s3`) imports it only then, and asks for it at start, so a missing extra stops the
relay before it acknowledges anything, with a message naming the extra.
"""

from __future__ import annotations

import importlib

from ._config import Config
from ._exceptions import ConfigError

__all__ = ["AWS_EXTRA", "aws_keys_in_use", "require_aws"]

AWS_EXTRA = "lineage-relay[aws]"


def aws_keys_in_use(config: Config) -> list[str]:
    """The configuration keys set that need AWS (empty: aiobotocore is never imported)."""
    keys: list[str] = []
    if config.openmetadata.aws_secret.enabled:
        keys.append("openmetadata.aws_secret.secret_id")
    if config.offload.enabled:
        keys.append("offload.s3_uri")
    return keys


def require_aws(*keys: str) -> None:
    """Raise `ConfigError` naming `keys` and the extra when aiobotocore cannot be imported."""
    if not keys:
        return
    try:
        importlib.import_module("aiobotocore.session")
    except ImportError as exc:
        raise ConfigError(
            f"{', '.join(keys)} needs AWS support, which is not installed ({exc}): install the "
            f"extra with `pip install '{AWS_EXTRA}'`, or unset {keys[0]}"
        ) from None
