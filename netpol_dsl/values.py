"""Validation of the values users write: labels, names, ports, CIDRs, DNS names, regexes.

Each check raises :class:`~netpol_dsl.diagnostics.PolicyError` (a ``ValueError``)
at the user's line, naming the field, the value and the accepted form.  The rules
are Kubernetes' own (``apimachinery`` validation) unless a comment says otherwise.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from netpol_dsl.diagnostics import Code, fail
from netpol_dsl.ir.selectors import SERVICE_ACCOUNT_KEY

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL_NAME: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS1123_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_IANA_SVC_NAME: Final = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
# DNS names as Cilium's toFQDNs accepts them: letters, digits, '-' and '_'
_DNS_LABEL: Final = re.compile(r"[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?")
_PATTERN_LABEL: Final = re.compile(r"[-A-Za-z0-9_*]+")
HTTP_METHODS: Final = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def label_key(key: str, field: str = "label key") -> str:
    """Check a label key: ``[prefix/]name``, name ≤63 alphanumerics with ``-_.``, prefix a DNS subdomain."""
    if not isinstance(key, str):
        raise fail(Code.NPD001, f"{field} must be a string, got {key!r}")
    prefix, slash, name = key.rpartition("/")
    form = "[prefix/]name: name is 1-63 of [A-Za-z0-9-_.] starting and ending alphanumeric, prefix a DNS subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise fail(Code.NPD001, f"{field} {key!r} is invalid; expected {form}")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        raise fail(Code.NPD001, f"{field} {key!r} has an invalid prefix {prefix!r}; expected {form}")
    if key == SERVICE_ACCOUNT_KEY:
        raise fail(Code.NPD001, f"{field} {key!r} is reserved: netpol-dsl uses it for the pods' service account",
                   hint="select by service account with service_account(namespace, name) or .service_account(name)")
    return key


def label_value(value: str, key: str = "") -> str:
    """Check a label value: empty, or ≤63 of ``[A-Za-z0-9-_.]`` starting and ending alphanumeric."""
    where = f"value of label {key!r}" if key else "label value"
    if not isinstance(value, str):
        raise fail(
            Code.NPD002,
            f"{where} must be a string, got {type(value).__name__} {value!r}",
            hint=f"write it quoted, e.g. {str(value)!r}",
        )
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        raise fail(
            Code.NPD002,
            f"{where} {value!r} is invalid; expected at most 63 of [A-Za-z0-9-_.] starting and ending alphanumeric",
        )
    return value


def dns_label(name: str, field: str) -> str:
    """Check a DNS-1123 label (namespace names, tier names)."""
    if not isinstance(name, str) or len(name) > 63 or not _DNS1123_LABEL.fullmatch(name):
        raise fail(
            Code.NPD003,
            f"{field} {name!r} is invalid; expected a DNS-1123 label: 1-63 of [a-z0-9-], "
            "starting and ending alphanumeric",
        )
    return name


def service_account_name(name: str) -> str:
    """Check a ServiceAccount name: a DNS-1123 subdomain, here of at most 63 characters.

    Kubernetes allows 253, but every engine that selects by service account does it through a
    label value (Cilium's ``io.cilium.k8s.policy.serviceaccount``), which is at most 63 characters.
    """
    if not isinstance(name, str) or len(name) > 63 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        raise fail(
            Code.NPD003,
            f"service account name {name!r} is invalid; expected a DNS-1123 subdomain of at most 63 characters: "
            "dot-separated labels of [a-z0-9-], each starting and ending alphanumeric",
        )
    return name


def zone_name(name: str) -> str:
    """Zone names appear in object names: a DNS-1123 label."""
    return dns_label(name, "zone name")


def port_number(port: int, field: str = "port") -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise fail(Code.NPD004, f"{field} {port!r} is invalid; expected an integer from 1 to 65535")
    return port


def icmp_type(kind: int, field: str = "ICMP type") -> int:
    """Check an ICMP or ICMPv6 type: 0-255 (an 8-bit field; type 0 is echo reply)."""
    if isinstance(kind, bool) or not isinstance(kind, int) or not 0 <= kind <= 255:
        raise fail(Code.NPD004, f"{field} {kind!r} is invalid; expected an integer from 0 to 255",
                   hint="for every type, call the builder without arguments: icmp() or icmpv6()")
    return kind


def port_range(start: int, end: int) -> tuple[int, int]:
    port_number(start, "port range start")
    port_number(end, "port range end")
    if end < start:
        raise fail(Code.NPD005, f"port range {start}-{end} is empty; expected start <= end")
    return start, end


def port_name(name: str) -> str:
    """Check a named port (IANA_SVC_NAME): ≤15 of ``[a-z0-9-]``, at least one letter, no ``--``."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 15
        or not _IANA_SVC_NAME.fullmatch(name)
        or "--" in name
        or not any(c.isalpha() for c in name)
    ):
        raise fail(
            Code.NPD006,
            f"named port {name!r} is invalid; expected an IANA service name: 1-15 of [a-z0-9-] "
            "with at least one letter, no leading, trailing or double '-'",
            hint="write a port number as an int, not a string",
        )
    return name


def network(text: str, field: str = "CIDR") -> IPNetwork:
    """Parse ``a.b.c.d/n`` or ``x::/n``; host bits must be zero; a bare address is a /32 or /128."""
    if not isinstance(text, str):
        raise fail(Code.NPD007, f"{field} must be a string like '10.0.0.0/8', got {text!r}")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        detail = str(exc)
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise fail(Code.NPD007, f"{field} {text!r} is invalid ({detail}); expected an address/prefix such as "
                       "'10.0.0.0/8' or '2001:db8::/32'") from None
        raise fail(Code.NPD007, f"{field} {text!r} has host bits set", hint=f"did you mean '{loose}'?") from None


def dns_name(name: str) -> str:
    """An exact DNS name (``matchName``): labels of ``[-A-Za-z0-9_]``, ≤63 each, ≤253 in all; trailing dot ok."""
    if not isinstance(name, str):
        raise fail(Code.NPD009, f"DNS name must be a string, got {name!r}")
    bare = name[:-1] if name.endswith(".") else name
    labels = bare.split(".")
    if (
        not bare
        or len(bare) > 253
        or len(labels) < 2
        or any(len(label) > 63 or not _DNS_LABEL.fullmatch(label) for label in labels)
    ):
        raise fail(
            Code.NPD009,
            f"DNS name {name!r} is invalid; expected dot-separated labels of [-A-Za-z0-9_] (at most 63 each, "
            "253 in all) with at least one dot, e.g. 'payments.example.com'",
            hint="use fqdn_pattern() for names with '*'" if "*" in name else "",
        )
    return bare.lower()


def dns_pattern(pattern: str) -> str:
    """A DNS pattern: ``*`` matches within one label; ``**.`` as first label matches any depth of subdomains."""
    if not isinstance(pattern, str):
        raise fail(Code.NPD010, f"FQDN pattern must be a string, got {pattern!r}")
    bare = pattern[:-1] if pattern.endswith(".") else pattern
    if bare == "*":
        return bare
    labels = bare.split(".")
    body = labels[1:] if labels and labels[0] == "**" else labels
    if (
        not bare
        or len(bare) > 255
        or len(labels) < 2
        or any(not label or len(label) > 63 or not _PATTERN_LABEL.fullmatch(label) for label in body)
        or "**" in "".join(body)
    ):
        raise fail(
            Code.NPD010,
            f"FQDN pattern {pattern!r} is invalid; expected dot-separated labels of [-A-Za-z0-9_*] where '*' "
            "matches within one label ('*.example.com'), '**.' as the first label matches any depth, "
            "or '*' alone for every name",
        )
    return bare.lower()


def http_method(method: str) -> str:
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise fail(Code.NPD011, f"HTTP method {method!r} is invalid; expected one of {', '.join(HTTP_METHODS)}")
    return method.upper()


def regex(text: str, field: str) -> str:
    """A regular expression that must compile (Python ``re`` as the common subset of RE2/POSIX ERE)."""
    if not isinstance(text, str) or not text:
        raise fail(Code.NPD012, f"{field} must be a non-empty regular expression, got {text!r}")
    try:
        re.compile(text)
    except re.error as exc:
        raise fail(Code.NPD012, f"{field} {text!r} does not compile: {exc}") from None
    if "(?" in text:
        raise fail(Code.NPD012, f"{field} {text!r} uses '(?...)' syntax that Envoy's RE2 does not accept")
    return text


def header_name(name: str) -> str:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise fail(Code.NPD012, f"HTTP header name {name!r} is invalid; expected an RFC 7230 token")
    return name
