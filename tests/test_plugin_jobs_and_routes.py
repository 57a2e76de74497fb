"""Plugin API 2.1's hooks: a plugin's own kinds of job (run by the workers, chunk by
chunk), its scheduled jobs (one per period however many workers look), its HTTP routes
(under /plugins/<name>, no authentication of the core's), and its merge fields (checked
when a template is saved, read for a batch of contacts at once)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import graphql_api_coach
import httpx
import pytest
from sqlalchemy import func, insert, literal, select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphql_api.kernel.db import utcnow
from graphql_api.plugin import (
    SYSTEM,
    Contact,
    JobItem,
    JobKind,
    MergeField,
    ScheduledJob,
    check_template,
    decode_id,
    hookimpl,
    merge_values,
    plugin_transaction,
    start_job,
    to_global_id,
)
from graphql_api.plugin import Job as JobRow
from graphql_api.plugin_host.contributions import PluginConflict
from graphql_api.testing import (
    add_members,
    admin_client,
    new_contact_id,
    new_group_id,
    run_jobs,
    run_schedules,
)

PAST = "pluginkit"


async def _every_contact(session: Any, job: Any) -> None:
    rows = select(literal(job.id), Contact.id)
    await session.execute(insert(JobItem).from_select(["job_id", "item"], rows))


class Kit:
    """A plugin with every 2.1 hook: a job that counts contacts into ``seen``."""

    PLUGIN_NAME = PAST

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def _count(self, session: Any, job: Any, owner: Any, items: list[int]) -> int:
        self.seen.extend(items)
        return len(items)

    @hookimpl
    def job_kinds(self) -> dict[str, JobKind]:
        return {
            f"{PAST}.count": JobKind(
                permission="contacts.view", prepare=_every_contact, run_chunk=self._count
            )
        }

    @hookimpl
    def scheduled_jobs(self) -> list[ScheduledJob]:
        return [ScheduledJob(f"{PAST}.count", every=timedelta(days=1))]

    @hookimpl
    def http_routes(self) -> list[Route]:
        async def newest(request: Request) -> JSONResponse:
            async with plugin_transaction(request, writing=False) as session:
                count = await session.scalar(select(func.count()).select_from(Contact))
            user = request.user.is_authenticated if "user" in request.scope else None
            return JSONResponse({"contacts": count, "authenticated": user})

        return [Route("/count", newest, methods=["GET"])]

    @hookimpl
    def merge_fields(self) -> list[MergeField]:
        async def initials(session: Any, contact_ids: Any) -> dict[int, str]:
            rows = await session.execute(
                select(Contact.id, Contact.first_name).where(Contact.id.in_(contact_ids))
            )
            return {pk: (name or "?")[:1] for pk, name in rows}

        return [MergeField("initial", "The first letter of the first name.", "A", initials)]


async def test_a_plugins_job_kind_runs_in_chunks_and_shows_as_a_job(app_factory: Any):
    kit = Kit()
    app = app_factory(plugins=[kit], job_chunk_size=2)
    http, client = await admin_client(app)
    async with http:
        ids = [await new_contact_id(client, lastName=f"Zon {n}") for n in range(5)]
        async with app.state.sessions() as session, session.begin():
            job = await start_job(
                session, kind=f"{PAST}.count", owner=SYSTEM, params={}, cause="test", items=None
            )
        await run_jobs(app, job_chunk_size=2)
        assert sorted(kit.seen) == sorted(int(c) for c in [await _contact_pk(app, i) for i in ids])
        shown = await client.data(
            "query($j: ID!) { job(id: $j) { kind state total done } }",
            {"j": _job_id(job.id)},
        )
        assert shown["job"] == {
            "kind": f"{PAST}.count",
            "state": "SUCCEEDED",
            "total": 5,
            "done": 5,
        }


async def test_a_schedule_starts_one_job_per_period_however_often_it_is_looked_at(
    app_factory: Any,
):
    app = app_factory(plugins=[Kit()])
    now = utcnow()
    assert await run_schedules(app, now) == 0, "first seen: due a period later"
    assert await run_schedules(app, now + timedelta(hours=23)) == 0
    assert await run_schedules(app, now + timedelta(days=1)) == 1
    assert await run_schedules(app, now + timedelta(days=1, minutes=5)) == 0
    assert await run_schedules(app, now + timedelta(days=2)) == 1
    async with app.state.sessions() as session:
        jobs = (await session.scalars(select(JobRow))).all()
        assert [(j.kind, j.as_system, j.state.value) for j in jobs] == [
            (f"{PAST}.count", True, "QUEUED")
        ] * 2


async def test_a_plugins_routes_answer_under_its_prefix_without_authentication(
    app_factory: Any,
):
    app = app_factory(plugins=[Kit()])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        answer = await http.get(f"/plugins/{PAST}/count")
        assert answer.status_code == 200
        assert answer.json() == {"contacts": 0, "authenticated": False}
        assert (await http.get("/count")).status_code == 404
        assert (await http.get(f"/plugins/{PAST}/nothing")).status_code == 404
        assert (await http.post(f"/plugins/{PAST}/count")).status_code == 405


async def test_a_plugins_merge_field_is_read_for_a_batch_and_checked_when_saved(
    app_factory: Any,
):
    app = app_factory(plugins=[Kit()])
    http, client = await admin_client(app)
    async with http:
        anna = await new_contact_id(client, firstName="Anna", lastName="Zon")
        bram = await new_contact_id(client, lastName="Wind")
        group = await new_group_id(client, name="Nieuwsbrief")
        saved = await client.data(
            """mutation { createEmailTemplate(input: {name: "Welkom",
            subject: "Hallo {{ contact.initial }}", body: "{{ group.name }}"})
            { errors { field code } } }"""
        )
        assert saved["createEmailTemplate"]["errors"] == []
        refused = await client.data(
            """mutation { createEmailTemplate(input: {name: "Fout",
            subject: "Hallo {{ contact.nickname }}", body: "x"})
            { errors { field code message } } }"""
        )
        [error] = refused["createEmailTemplate"]["errors"]
        assert (error["field"], error["code"]) == (["input", "subject"], "INVALID")
        assert "nickname" in error["message"]
        pks = [await _contact_pk(app, c) for c in (anna, bram)]
        async with app.state.sessions() as session:
            values = await merge_values(session, await _group_pk(group), pks)
            assert await check_template(session, "{{ contact.initial }}") is None
            assert await check_template(session, "{{ contact.nope }}") is not None
        assert [values[pk]["contact"]["initial"] for pk in pks] == ["A", "?"]
        assert values[pks[0]]["group"]["name"] == "Nieuwsbrief"
        assert values[pks[1]]["contact"]["displayName"] == "Wind"


class Squatter:
    """A plugin claiming a job kind and a schedule outside its own name."""

    PLUGIN_NAME = "squatter"

    @hookimpl
    def job_kinds(self) -> dict[str, JobKind]:
        return {"members.add": JobKind("members.manage", None, _nothing)}


class ForeignSchedule:
    PLUGIN_NAME = "foreign"

    @hookimpl
    def scheduled_jobs(self) -> list[ScheduledJob]:
        return [ScheduledJob("members.add", every=timedelta(hours=1))]


class TakenMergeField:
    PLUGIN_NAME = "taken"

    @hookimpl
    def merge_fields(self) -> list[MergeField]:
        return [MergeField("email", "Another e-mail.", "x", _no_values)]


async def _nothing(*_: Any) -> int:
    return 0


async def _no_values(*_: Any) -> dict[int, Any]:
    return {}


@pytest.mark.parametrize(
    ("plugin", "said"),
    [
        (Squatter(), "job kinds ['members.add'] must be named 'squatter.' and a name"),
        (ForeignSchedule(), "scheduled jobs ['members.add'] are not of the plugin's own"),
    ],
)
async def test_a_plugin_reaching_outside_its_name_is_left_out(
    app_factory: Any, plugin: Any, said: str
):
    app = app_factory(plugins=[plugin])
    [info] = [i for i in app.state.plugins.infos if i.name == plugin.PLUGIN_NAME]
    assert said in (info.error or "")
    assert app.state.job_kinds["members.add"].permission == "members.manage"
    assert app.state.plugins.scheduled_jobs == []


def test_a_merge_field_of_the_cores_name_stops_the_service(app_factory: Any):
    with pytest.raises(PluginConflict, match="merge field 'email' is contributed by both"):
        app_factory(plugins=[TakenMergeField()])


def test_a_schedule_runs_at_most_once_a_minute():
    with pytest.raises(ValueError, match="at most once a minute"):
        ScheduledJob(f"{PAST}.count", every=timedelta(seconds=5))


async def _contact_pk(app: Any, global_id: str) -> int:
    return decode_id(global_id, "Contact", ["id"])


async def _group_pk(global_id: str) -> int:
    return decode_id(global_id, "Group", ["id"])


def _job_id(pk: int) -> str:
    return to_global_id("Job", pk)


async def test_a_role_plugins_flag_is_a_merge_field_read_for_a_batch(app_factory: Any):
    app = app_factory(plugins=[graphql_api_coach.plugin])
    http, client = await admin_client(app)
    async with http:
        coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
        anna = await new_contact_id(client, firstName="Anna")
        bram = await new_contact_id(client, firstName="Bram")
        await add_members(client, coaches, [anna])
        pks = [await _contact_pk(app, c) for c in (anna, bram)]
        async with app.state.sessions() as session:
            values = await merge_values(session, None, pks)
        assert [values[pk]["contact"]["isCoach"] for pk in pks] == [True, False]
