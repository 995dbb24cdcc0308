"""Fully qualified names as OpenMetadata builds them.

Parts join with ``.``; a part that contains ``.`` is wrapped in double quotes
(``svc."my.db".schema.orders``), and an embedded ``"`` is escaped as ``\\"`` (recent servers).
"""

from __future__ import annotations


def quote_name(name: str) -> str:
    """Quote one FQN part the way ``FullyQualifiedName.quoteName`` does."""
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        inner = name[1:-1]
        return name if "." in inner else inner
    escaped = name.replace('"', '\\"')
    return f'"{escaped}"' if "." in name else escaped


def build(*parts: str) -> str:
    """Join name parts into an FQN, quoting each part that needs it."""
    return ".".join(quote_name(part) for part in parts)


def split(fqn: str) -> list[str]:
    """Split an FQN into its unquoted parts (the inverse of ``build``)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(fqn):
        char = fqn[index]
        if char == "\\" and index + 1 < len(fqn) and fqn[index + 1] == '"':
            current.append('"')
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts
