"""Who may see and change what in `mlcycle ui`: scopes, tokens, sessions and CSRF.

Every route declares one scope:

* ``public`` — the login page and the static files;
* ``read`` — every page that only shows something;
* ``write`` — promote and rollback (POSTs).

Tokens extend the serving admin token design (``serve/http/auth.py``): a
bearer token per scope, compared in constant time. ``write`` implies
``read``. With no token at all the UI is open, which :func:`check_binding`
allows only on a loopback address. A browser signs in once on ``/login``; the
session cookie it gets holds the scope and an expiry signed with the server's
secret (never the token itself).

A POST must carry the CSRF token of the page it came from: a signed random
value set as a cookie and repeated in a hidden form field (signed
double-submit). A page on another site can neither read the cookie nor forge
the signature, and the session cookie is ``SameSite=Strict`` besides.

Example:
    >>> policy = AccessPolicy(write_token="w", read_token="r", secret=b"k" * 32)
    >>> policy.scope_of_token("r")
    'read'
    >>> policy.check_csrf(policy.new_csrf(), None)
    False
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field

from mlcycle.errors import BadInput

SCOPES = ("public", "read", "write")
SESSION_COOKIE = "mlcycle_ui_session"
CSRF_COOKIE = "mlcycle_ui_csrf"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ::1).

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
        (True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, write_token: str | None, read_token: str | None) -> None:
    """Refuse to serve an open UI anywhere but loopback.

    Example:
        >>> check_binding("0.0.0.0", None, None)
        Traceback (most recent call last):
        mlcycle.errors.BadInput: ...
    """
    if read_token and not write_token:
        raise BadInput(
            "--read-token needs --token",
            "the write token is the one that can promote; a read token alone leaves writes open",
            "pass --token (or MLCYCLE_UI_TOKEN) as well",
        )
    if not is_loopback(host) and not write_token:
        raise BadInput(
            f"refusing to serve the UI on {host} without a token",
            "anyone who can reach that address could read the registry and promote models",
            "pass --token (or set MLCYCLE_UI_TOKEN), or bind to 127.0.0.1",
        )


DEFAULT_TOKEN_NAME = "ui-token"


@dataclass
class AccessPolicy:
    """The tokens a UI server was started with and the secret that signs its cookies.

    ``token_name`` names the write token's holder in the alias history (who
    promoted or rolled back from the page); without a token the actor is
    ``MLCYCLE_ACTOR`` or the OS user running the server (:meth:`actor`).
    """

    write_token: str | None = None
    read_token: str | None = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    token_name: str = DEFAULT_TOKEN_NAME

    @property
    def open(self) -> bool:
        """No token set: every request gets the ``write`` scope (loopback only)."""
        return not self.write_token

    def actor(self) -> str:
        """Who a write from the browser is recorded as: the write token's name, or,
        open on loopback, ``MLCYCLE_ACTOR`` / the OS user (the registry's default).

        Example:
            >>> AccessPolicy(write_token="w", token_name="ana").actor()
            'ana'
        """
        if self.open:
            from mlcycle.registry.models import current_actor

            return current_actor()
        return self.token_name

    def scope_of_token(self, given: str) -> str | None:
        """The scope a presented token grants, if any (constant-time comparisons)."""
        found = None
        for scope, token in (("write", self.write_token), ("read", self.read_token)):
            if token and hmac.compare_digest(given.encode(), token.encode()) and found is None:
                found = scope
        return found

    def _sign(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def new_session(self, scope: str, now: float | None = None) -> str:
        """A cookie value granting ``scope`` for :data:`SESSION_SECONDS`."""
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = f"{scope}.{expires}"
        return f"{body}.{self._sign('session:' + body)}"

    def scope_of_session(self, value: str, now: float | None = None) -> str | None:
        scope, _, rest = value.partition(".")
        expires, _, signature = rest.partition(".")
        if scope not in ("read", "write") or not expires.isdigit():
            return None
        if not hmac.compare_digest(signature, self._sign(f"session:{scope}.{expires}")):
            return None
        return scope if int(expires) > (now or time.time()) else None

    def granted(self, authorization: str | None, session: str | None) -> str | None:
        """The scope a request holds: from its bearer token, else its session cookie."""
        if self.open:
            return "write"
        if authorization:
            kind, _, value = authorization.partition(" ")
            if kind.lower() == "bearer":
                return self.scope_of_token(value.strip())
        return self.scope_of_session(session) if session else None

    def new_csrf(self) -> str:
        """A fresh CSRF value: a random nonce and its signature."""
        nonce = secrets.token_hex(16)
        return f"{nonce}.{self._sign('csrf:' + nonce)}"

    def check_csrf(self, cookie: str | None, submitted: str | None) -> bool:
        """The form's value equals the cookie's, and the server signed it."""
        if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
            return False
        nonce, _, signature = cookie.partition(".")
        return bool(nonce) and hmac.compare_digest(signature, self._sign("csrf:" + nonce))


def allows(granted: str | None, needed: str) -> bool:
    """Whether a request holding ``granted`` may use a route needing ``needed``.

    Example:
        >>> allows("read", "write"), allows("write", "read"), allows(None, "public")
        (False, True, True)
    """
    if needed not in SCOPES:
        raise ValueError(f"unknown scope {needed!r}")
    if needed == "public":
        return True
    if needed == "read":
        return granted in ("read", "write")
    return granted == "write"
