"""Point the real ``twilio`` SDK (9.x) at any base URL (a local stand-in, a proxy).

The SDK has no base-URL setting: every resource builds absolute URLs on
``https://<product>.twilio.com``, including the follow-up URLs of paged lists
(``Page.next_page_url`` = ``Domain.base_url`` + the page's ``next_page_uri``).
All of them go through ``HttpClient.request()``, so that is where the scheme and
host are swapped.

Only depends on ``twilio`` (and ``requests``, which it depends on).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

__all__ = ["STOCK_BASE_URL", "BaseUrlTwilioHttpClient", "make_client", "rewrite_url"]

STOCK_BASE_URL = "https://api.twilio.com"


def _is_stock(base_url: Optional[str]) -> bool:
    if not base_url:
        return True
    parts = urlsplit(base_url.strip())
    return (
        parts.scheme.lower() == "https"
        and (parts.hostname or "").lower() == "api.twilio.com"
        and parts.port in (None, 443)
        and parts.path.strip("/") == ""
    )


def _is_twilio_host(host: Optional[str]) -> bool:
    host = (host or "").lower().rstrip(".")
    return host == "twilio.com" or host.endswith(".twilio.com")


def _is_loopback(host: Optional[str]) -> bool:
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def rewrite_url(url: str, base_url: Optional[str]) -> str:
    """Swap scheme+host(+port) of a ``*.twilio.com`` URL for ``base_url``.

    A path prefix on ``base_url`` is kept in front of the original path. URLs on
    other hosts, and every URL when ``base_url`` is the stock API host (or empty),
    are returned unchanged.
    """
    if _is_stock(base_url):
        return url
    target = urlsplit(url)
    if not _is_twilio_host(target.hostname):
        return url
    base = urlsplit(base_url.strip())
    path = base.path.rstrip("/") + (target.path or "/")
    return urlunsplit((base.scheme, base.netloc, path, target.query, target.fragment))


class BaseUrlTwilioHttpClient(TwilioHttpClient):
    """A ``TwilioHttpClient`` that sends every Twilio request to ``base_url``.

    ``base_url`` is e.g. ``http://127.0.0.1:18010``; ``https://api.twilio.com``
    (or empty/None) behaves exactly like the stock client. Other keyword
    arguments are those of ``TwilioHttpClient`` (``pool_connections``,
    ``request_hooks``, ``timeout``, ``logger``, ``proxy``, ``max_retries``).

    ``trust_env``: whether ``requests`` reads proxy/CA settings from the
    environment (``HTTP_PROXY`` ...). Default: the stock behaviour (True), except
    for a loopback base URL, where an environment proxy would only get in the way.
    """

    def __init__(self, base_url: Optional[str] = STOCK_BASE_URL, *,
                 trust_env: Optional[bool] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.base_url = (base_url or STOCK_BASE_URL).strip().rstrip("/")
        self.is_stock = _is_stock(self.base_url)
        if self.is_stock:
            return
        base = urlsplit(self.base_url)
        if base.scheme not in ("http", "https") or not base.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if self.session is not None:
            if trust_env is None:
                trust_env = not _is_loopback(base.hostname)
            self.session.trust_env = trust_env
            if base.scheme == "http":
                # The parent only sizes the pool of https:// connections.
                max_retries = kwargs.get("max_retries")
                if max_retries is not None:
                    adapter = HTTPAdapter(max_retries=max_retries)
                else:
                    adapter = HTTPAdapter(pool_maxsize=min(32, (os.cpu_count() or 1) + 4))
                self.session.mount("http://", adapter)

    def request(self, method, url, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        return super().request(
            method,
            rewrite_url(url, self.base_url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def make_client(account_sid: str, auth_token: str, base_url: Optional[str],
                timeout: Optional[float] = 10) -> Client:
    """A ``twilio.rest.Client`` for ``account_sid`` that talks to ``base_url``.

    ``TWILIO_EDGE`` / ``TWILIO_REGION`` (which would rewrite hosts) are ignored;
    credentials are never read from the environment.
    """
    client = Client(
        username=account_sid,
        password=auth_token,
        account_sid=account_sid,
        http_client=BaseUrlTwilioHttpClient(base_url, timeout=timeout),
        # A non-empty mapping, so that the SDK does not fall back to os.environ.
        environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
    )
    client.edge = None
    client.region = None
    return client
