"""What every task of Noctis' flows shares: retries of transient Atlas errors, the run's id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from noctis.errors import is_retryable

P = ParamSpec("P")
R = TypeVar("R")


async def _retryable(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a task only when its error says the same work may succeed (a transient database
    failure: lost connection, deadlock); see :func:`noctis.errors.is_retryable`."""
    error = await state.aresult(raise_on_failure=False)
    return isinstance(error, BaseException) and is_retryable(error)


def database_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task that talks to Atlas: three retries of transient failures, never cached."""
    return task(
        name=name,
        retries=3,
        retry_delay_seconds=[1, 4, 10],
        retry_condition_fn=_retryable,
        cache_policy=NO_CACHE,
    )


def from_deployment() -> bool:
    """Whether the flow run calling this (from the flow's body) belongs to a deployment."""
    context = FlowRunContext.get()
    return (
        context is not None
        and context.flow_run is not None
        and (context.flow_run.deployment_id is not None)
    )


def flow_run_id() -> str:
    """The id of the flow run calling this, from the flow or one of its tasks."""
    run_id = flow_run.id
    if run_id is None:
        raise RuntimeError("not inside a flow run")
    return str(run_id)
