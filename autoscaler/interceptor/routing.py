"""The routing table, with the KEDA HTTP add-on's precedence (pure: no I/O, no clock).

A rule is a set of hosts × path prefixes, plus headers that must all be present (with a value when
one is given). A request is looked up in three rounds: its exact host, then its wildcard names from
the most specific (`*.b.example.com` before `*.example.com`), then the catch-all host (`*`, also a
rule without hosts). In each round only the longest path prefix that is a prefix at a segment
boundary counts; among the routes declared at that host and prefix the first whose headers match
wins, ordered by more headers, then more headers with a value, then the older object, then
namespace and name (descending, as the add-on sorts them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CATCH_ALL = "*"
# host[:port] or [ipv6][:port]; labels are then checked one by one (no backtracking regex on input)
_HOST = re.compile(r"^(?P<name>[A-Za-z0-9_.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>\d{1,5}))?$")


class MalformedHost(ValueError):
    """The Host header is missing or not a host[:port]."""


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    value: str | None = None


@dataclass(frozen=True)
class Rule:
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    headers: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True)
class RouteRef:
    """What the table needs of a route to order it: its identity and age."""

    namespace: str
    name: str
    created: str = ""  # RFC 3339 creationTimestamp: sorts in time order as text


def strip_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def request_host(host_header: str | None) -> str:
    """The host name a request routes on: Host without its port, lower case (DNS names are
    case-insensitive). A missing or malformed Host raises MalformedHost."""
    m = _HOST.match(host_header or "")
    if m is None or (m["port"] is not None and not 0 < int(m["port"]) < 65536):
        raise MalformedHost(f"malformed Host header {host_header!r}")
    name = m["name"]
    if name.startswith("["):
        return name[1:-1].lower()
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if any(not label or len(label) > 63 or label[0] == "-" or label[-1] == "-" for label in labels):
        raise MalformedHost(f"malformed Host header {host_header!r}")
    return ".".join(labels).lower()


def make_key(host: str, path: str) -> str:
    """host + '/' + the path without outer slashes + '/': a prefix test on keys is then a prefix
    test on whole path segments."""
    path = path.strip("/")
    return f"{host}/{path}/" if path else f"{host}/"


def wildcard_names(host: str) -> list[str]:
    """`a.b.example.com` → [`*.b.example.com`, `*.example.com`, `*.com`]: most specific first."""
    parts = host.split(".")
    return [f"*.{'.'.join(parts[i:])}" for i in range(1, len(parts))]


def _header_values(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> list[str]:
    lower = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [v for k, v in items if k.lower() == lower]


def headers_match(wanted: Sequence[HeaderMatch], headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> bool:
    for m in wanted:
        values = _header_values(headers, m.name)
        if m.value is None and not values:
            return False
        if m.value is not None and m.value not in values:
            return False
    return True


@dataclass(frozen=True)
class _Entry:
    ref: RouteRef
    headers: tuple[HeaderMatch, ...]

    def order(self) -> tuple[int, int, str, _Desc, _Desc]:
        valued = sum(1 for h in self.headers if h.value is not None)
        return (-len(self.headers), -valued, self.ref.created, _Desc(self.ref.namespace), _Desc(self.ref.name))


@dataclass(frozen=True, order=False)
class _Desc:
    """A string that sorts in reverse."""

    text: str

    def __lt__(self, other: _Desc) -> bool:
        return self.text > other.text


@dataclass
class RoutingTable:
    """Keys (see `make_key`) → the routes declared there, in precedence order."""

    entries: dict[str, list[_Entry]] = field(default_factory=dict)
    # keys grouped by host part, each list longest first: the longest-prefix lookup scans one host
    _by_host: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, routes: Iterable[tuple[RouteRef, Sequence[Rule]]]) -> RoutingTable:
        table = cls()
        for ref, rules in routes:
            for rule in rules:
                hosts = rule.hosts or (CATCH_ALL,)
                paths = rule.paths or ("",)
                for host in hosts:
                    h = strip_port(host).lower()
                    h = CATCH_ALL if h in ("", CATCH_ALL) else h
                    for path in paths:
                        table.entries.setdefault(make_key(h, path), []).append(_Entry(ref, rule.headers))
        for key, entries in table.entries.items():
            entries.sort(key=_Entry.order)
            table._by_host.setdefault(key.split("/", 1)[0], []).append(key)
        for keys in table._by_host.values():
            keys.sort(key=len, reverse=True)
        return table

    def _try(self, host: str, path: str, headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> RouteRef | None:
        want = make_key(host, path)
        for key in self._by_host.get(host, ()):
            if want.startswith(key):  # the longest prefix only, as the add-on's radix lookup
                for e in self.entries[key]:
                    if headers_match(e.headers, headers):
                        return e.ref
                return None
        return None

    def route(self, host: str, path: str,
              headers: Mapping[str, str] | Sequence[tuple[str, str]] = ()) -> RouteRef | None:
        """The route for a request (host already through `request_host`), or None: no route."""
        found = self._try(host, path, headers)
        if found is not None:
            return found
        for name in wildcard_names(host):
            found = self._try(name, path, headers)
            if found is not None:
                return found
        return self._try(CATCH_ALL, path, headers)


def rule_matches(rule: Rule, host: str, path: str, headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> bool:
    """One rule against one request, as the add-on matches static routes: any of the hosts (`*` or
    empty: all; `*.example.com`: any name under it), any of the path prefixes (at `/` boundaries),
    and all of the headers."""
    if rule.hosts and not any(h in ("", CATCH_ALL) or (h.startswith("*.") and host.endswith(h[1:])) or host == h
                              for h in (strip_port(x).lower() for x in rule.hosts)):
        return False
    if rule.paths:
        norm = path.strip("/")
        if not any(p.strip("/") == "" or norm == p.strip("/") or norm.startswith(p.strip("/") + "/")
                   for p in rule.paths):
            return False
    return headers_match(rule.headers, headers)
