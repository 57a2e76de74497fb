"""Contacts: creating, changing, finding, and refusing bad input."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.testing import (
    CREATE_CONTACT,
    UPDATE_CONTACT,
    GraphQLClient,
    new_contact_id,
    refused,
    unchanged,
)


async def test_create_person_and_organisation(client: GraphQLClient):
    data = await client.data(
        CREATE_CONTACT,
        {
            "input": {
                "firstName": " Anouk ",
                "lastName": "van den Berg",
                "email": "anouk@example.nl",
                "phone": "06-12345678",
                "street": "Dorpsstraat 1",
                "postalCode": "8011 AB",
                "city": "Zwolle",
            }
        },
    )
    person = data["createContact"]["contact"]
    assert person["kind"] == "PERSON"
    assert person["displayName"] == "Anouk van den Berg"
    assert person["firstName"] == "Anouk"
    assert person["postalCode"] == "8011 AB"

    data = await client.data(
        CREATE_CONTACT,
        {"input": {"kind": "ORGANISATION", "organisationName": "Energiecoöperatie Zon"}},
    )
    assert data["createContact"]["contact"]["displayName"] == "Energiecoöperatie Zon"


async def test_update_changes_only_given_fields(client: GraphQLClient):
    data = await client.data(
        CREATE_CONTACT, {"input": {"lastName": "Smit", "email": "a@example.nl", "city": "Zwolle"}}
    )
    contact_id = data["createContact"]["contact"]["id"]
    data = await client.data(
        UPDATE_CONTACT, {"id": contact_id, "input": {"city": "Deventer", "email": None}}
    )
    assert data["updateContact"] == {
        "contact": {"displayName": "Smit", "email": None, "city": "Deventer"},
        "errors": [],
    }


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"lastName": "Smit", "email": "geen-adres"}, ["input", "email"], "INVALID"),
        ({"lastName": "x" * 10_000}, ["input", "lastName"], "TOO_LONG"),
        ({"email": "a@example.nl"}, ["input", "lastName"], "REQUIRED"),
        ({"kind": "ORGANISATION", "lastName": "Smit"}, ["input", "organisationName"], "REQUIRED"),
        ({"lastName": "Smit", "kind": None}, ["input", "kind"], "REQUIRED"),
    ],
)
async def test_bad_contacts_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient, values: dict[str, Any], field: list[str], code: str
):
    await new_contact_id(client, lastName="Smit", email="smit@example.nl")
    errors = await refused(app, client, CREATE_CONTACT, {"input": values})
    assert (errors[0]["field"], errors[0]["code"]) == (field, code)


async def test_bad_updates_are_refused_and_change_nothing(app: Any, client: GraphQLClient):
    contact_id = await new_contact_id(client, lastName="Smit", city="Zwolle")
    errors = await refused(
        app,
        client,
        UPDATE_CONTACT,
        {"id": contact_id, "input": {"city": "Deventer", "lastName": ""}},
    )
    assert (errors[0]["field"], errors[0]["code"]) == (["input", "lastName"], "REQUIRED")
    errors = await refused(
        app, client, UPDATE_CONTACT, {"id": "Q29udGFjdDo5OTk=", "input": {"city": "X"}}
    )
    assert errors == [{"field": ["id"], "code": "NOT_FOUND", "message": "No contact with this id."}]
    async with unchanged(app):
        body = await client.execute(UPDATE_CONTACT, {"id": contact_id, "input": {"kind": "ROBOT"}})
    assert "ROBOT" in body["errors"][0]["message"]


async def test_search_is_case_insensitive_across_fields(client: GraphQLClient):
    for values in (
        {"firstName": "Éva", "lastName": "Bos", "city": "Zwolle"},
        {"firstName": "Kees", "lastName": "Vos", "email": "kees@ZONNEDAK.nl"},
        {"kind": "ORGANISATION", "organisationName": "Zonnedak BV"},
        {"lastName": "100%_echt"},
    ):
        await client.data(CREATE_CONTACT, {"input": values})
    query = "query($s: String) { contacts(search: $s) { totalCount nodes { displayName } } }"

    async def found(term: str) -> list[str]:
        return [
            n["displayName"] for n in (await client.data(query, {"s": term}))["contacts"]["nodes"]
        ]

    assert await found("zonnedak") == ["Kees Vos", "Zonnedak BV"]
    assert await found("éVA") == ["Éva Bos"]
    assert await found("éva bos") == ["Éva Bos"]
    assert await found("ZWOLLE") == ["Éva Bos"]
    assert await found("%_") == ["100%_echt"]
    assert await found("  ") == ["Éva Bos", "Kees Vos", "Zonnedak BV", "100%_echt"]
