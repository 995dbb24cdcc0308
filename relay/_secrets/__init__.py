"""The OpenMetadata token: where it comes from, cached, re-fetched on 401 or rotation.

One source per configuration (`OpenMetadataConfig` refuses several):

    jwt_token        inline in the config file (discouraged: warned about once)
    jwt_token_env    an environment variable, read once when the provider is made
    jwt_token_file   a file, re-read when it changes (Kubernetes secret mounts swap a
                     `..data` symlink, which changes the inode we stat)
    vault            HashiCorp Vault KV v2 over HTTP (`GET /v1/<mount>/data/<path>`)
    aws_secret       AWS Secrets Manager through aiobotocore (standard credential chain)

The value is wrapped in a `Secret` the moment it is read. No log line, error message,
repr or metric ever carries it: errors name the source and what to fix instead.

`TokenProvider.token()` is the hot path (every call to OpenMetadata): it answers from the
cache without awaiting anything unless the source changed. `refresh()` is what a sink calls
after a 401; concurrent and repeated refreshes are folded so a storm of 401s costs one fetch.
"""

from ._provider import TokenProvider, jwt_expiry, make_token_provider
from ._source import Source

__all__ = ["Source", "TokenProvider", "jwt_expiry", "make_token_provider"]
