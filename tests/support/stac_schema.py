"""The STAC 1.1.0 Item JSON schema, offline: the schema files pystac ships, read as data.

Validation is jsonschema's (Draft 7, as the schema says), not pystac's: the tests read the
export back with an independent reader. Each file is registered under the URL the others use
to refer to it (a few of their own ``$id`` values are misspelt, e.g. ``commonjson``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource

STAC = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/"
GEOJSON = "https://geojson.org/schema/"


@cache
def item_validator() -> Draft7Validator:
    root = resources.files("pystac.validation") / "jsonschemas"
    entries: list[tuple[str, Resource[Any]]] = []
    for folder, base in (("stac-spec/v1.1.0", STAC), ("geojson", GEOJSON)):
        for path in (root / folder).iterdir():
            if path.name.endswith(".json"):
                contents = json.loads(path.read_text())
                contents["$id"] = base + path.name
                entries.append((base + path.name, Resource.from_contents(contents)))
    registry: Registry[Any] = Registry().with_resources(entries)
    schema = registry.contents(STAC + "item.json")
    return Draft7Validator(schema, registry=registry)
