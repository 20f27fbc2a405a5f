"""Register ``imagery-finder-study/default`` on the work pool the compose worker serves.

The deployment's entrypoint is a module path (``noctis.flows.imagery_finder_study:...``):
a worker built from the Noctis image imports the installed package, nothing is
pulled. Parameters are enforced by the server against the flow's schema, so a
bad trigger (a pk of 0, a string) is refused before any run exists.
Registering is idempotent: the second call updates the same deployment.
"""

from __future__ import annotations

import contextlib
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types.entrypoint import EntrypointType

from noctis import __version__
from noctis.flows.imagery_finder_study import imagery_finder_study

DEPLOYMENT_NAME = "default"
FULL_NAME = f"{imagery_finder_study.name}/{DEPLOYMENT_NAME}"


async def ensure_work_pool(name: str) -> None:
    async with get_client() as client:
        try:
            await client.read_work_pool(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another registrar won the race
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))


async def register(*, work_pool: str) -> UUID:
    """Create or update the deployment on ``work_pool`` (created as a process pool if missing)."""
    await ensure_work_pool(work_pool)
    deployment = await imagery_finder_study.ato_deployment(
        name=DEPLOYMENT_NAME,
        version=__version__,
        description="Match the archive to an ImageryFinder, record it for a Dream, tell Augur.",
        tags=["noctis"],
        enforce_parameter_schema=True,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    deployment_id: UUID = await deployment.aapply(work_pool_name=work_pool)
    return deployment_id
