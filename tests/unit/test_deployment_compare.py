"""``noctis deploy`` leaves an unchanged automation alone: the comparison does not depend on
the order a set happens to iterate in (string hashes are salted per process, so the same
members inserted in another order may iterate differently)."""

from __future__ import annotations

import uuid

from noctis.deployment import _comparable, zombie_automation


def test_an_automation_read_back_with_its_sets_in_another_order_is_unchanged() -> None:
    ids = (uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    desired = zombie_automation(uuid.uuid4(), also=ids)
    data = desired.model_dump(mode="json")
    trigger = data["trigger"]
    for name in ("expect", "after", "for_each"):
        trigger[name] = list(reversed(trigger[name]))
    related = trigger["match_related"]["prefect.resource.id"]
    trigger["match_related"]["prefect.resource.id"] = list(reversed(related))
    read_back = type(desired).model_validate(data)
    assert _comparable(read_back) == _comparable(desired)
    # A real change still counts.
    other = zombie_automation(uuid.uuid4(), also=ids)
    assert _comparable(other) != _comparable(desired)
