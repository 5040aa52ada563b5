"""Where the objects an engine evaluates come from, for the simulator's explanations.

The cilium and calico engines name each object they evaluate (``KIND namespace/name``);
:class:`ManifestOrigins` maps that name to the manifest file and document defining it and, for
manifests netpol-dsl built, to its ``netpol-dsl.dev/source`` annotation (the Python lines behind it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from netpol_dsl.provenance import SOURCE_ANNOTATION
from netpol_dsl.simulate import Manifest, _provenance


def _source(body: Mapping[str, Any]) -> str:
    """The ``netpol-dsl.dev/source`` annotation of a manifest object ("" if it has none)."""
    metadata = body.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    source = annotations.get(SOURCE_ANNOTATION, "") if isinstance(annotations, Mapping) else ""
    return source if isinstance(source, str) else ""


class ManifestOrigins:
    """The manifest file and document (``where``) and the netpol-dsl source (``source``) of every object
    that ``ident`` names (None: not an object the engine names); ``problems`` lists objects defined twice."""

    def __init__(self, manifests: Sequence[Manifest], ident: Callable[[Mapping[str, Any]], str | None]) -> None:
        self.where: dict[str, str] = {}  # object ident -> manifest file and document
        self.source: dict[str, str] = {}  # object ident -> netpol-dsl.dev/source
        self.problems: list[str] = []
        for manifest in manifests:
            name = ident(manifest.body)
            if name is None:
                continue
            if name in self.where:
                self.problems.append(f"{manifest.where}: {name} is defined twice (first at {self.where[name]}); "
                                     "the API server would keep one")
                continue
            self.where[name] = manifest.where
            self.source[name] = _source(manifest.body)

    def describe(self, ident: str) -> str:
        """``FILE: document N`` of the object (``?`` if unknown) and its netpol-dsl source, if any."""
        return _provenance(self.source.get(ident, ""), self.where.get(ident, "?"))
