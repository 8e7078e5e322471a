"""Public identifiers: a type prefix and random hex (`agent_125207e452f8714a`)."""

import secrets


def new_id(prefix: str, nbytes: int = 8) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"
