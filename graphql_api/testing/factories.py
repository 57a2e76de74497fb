"""Setting up data through the API, as a user would: the GraphQL documents several tests
send, each written once, and builders that send them and fail the test on a refusal."""

from __future__ import annotations

from typing import Any

from graphql_api.testing.clients import GraphQLClient

# The documents' variables are named after the arguments they fill: ``input``, ``id``,
# ``groupId``, ``contactIds``, ``contactId``.

GROUP_FIELDS = """
  id name description kind startDate endDate showOnPortal showOnContact editableOnPortal
  emailOnNewMember newMemberEmailTemplate { id name } neighbourhoodRole { key }
  closed responsible { id name } createdBy { id name } createdAt updatedAt memberCount
"""
CREATE_GROUP = f"""
mutation($input: CreateGroupInput!) {{
  createGroup(input: $input) {{ group {{ {GROUP_FIELDS} }} errors {{ field code message }} }}
}}"""
UPDATE_GROUP = f"""
mutation($id: ID!, $input: UpdateGroupInput!) {{
  updateGroup(id: $id, input: $input) {{
    group {{ {GROUP_FIELDS} }} errors {{ field code message }}
  }}
}}"""
DELETE_GROUP = (
    "mutation($id: ID!) { deleteGroup(id: $id) { deletedId errors { field code message } } }"
)
GROUP_COUNT = "{ groups { totalCount } }"
GROUP_MEMBERS = """query($id: ID!) { group(id: $id) {
  memberCount members(first: 100) { totalCount nodes { lastName } } } }"""
GROUP_USED_BY = "query($id: ID!) { group(id: $id) { usedBy { name } } }"
MEMBERSHIP_PATH = """query($id: ID!, $contactId: ID!) {
  group(id: $id) { membershipPath(contactId: $contactId) { name } } }"""
ADD_MEMBERS = """
mutation($groupId: ID!, $contactIds: [ID!]!) {
  addGroupMembers(groupId: $groupId, contactIds: $contactIds) {
    group { memberCount }
    memberships { source memberSince contact { displayName } addedBy { name } group { name } }
    changedCount
    errors { field code message }
  }
}"""
REMOVE_MEMBERS = """
mutation($groupId: ID!, $contactIds: [ID!]!) {
  removeGroupMembers(groupId: $groupId, contactIds: $contactIds) {
    group { memberCount } changedCount errors { field code message }
  }
}"""
CREATE_CONTACT = """
mutation($input: ContactInput!) {
  createContact(input: $input) {
    contact { id kind displayName firstName lastName organisationName email phone street
              postalCode city createdAt }
    errors { field code message }
  }
}"""
UPDATE_CONTACT = """
mutation($id: ID!, $input: ContactInput!) {
  updateContact(id: $id, input: $input) {
    contact { displayName email city } errors { field code message }
  }
}"""
CREATE_EMAIL_TEMPLATE = """
mutation($input: EmailTemplateInput!) {
  createEmailTemplate(input: $input) {
    emailTemplate { id name subject body } errors { field code }
  }
}"""


async def new_group(client: GraphQLClient, **values: Any) -> dict[str, Any]:
    """Create a group from ``CreateGroupInput`` values (it must succeed); the group, with
    ``GROUP_FIELDS``, as the mutation answered."""
    data = await client.data(CREATE_GROUP, {"input": values})
    payload = data["createGroup"]
    assert payload["errors"] == [], payload["errors"]
    return payload["group"]


async def new_group_id(client: GraphQLClient, **values: Any) -> str:
    """Create a group from ``CreateGroupInput`` values (it must succeed); its id."""
    return (await new_group(client, **values))["id"]


async def new_static_group_id(client: GraphQLClient, name: str, contact_ids: list[str]) -> str:
    """Create a static group with these members (maybe none); its id."""
    group_id = await new_group_id(client, name=name)
    if contact_ids:
        await add_members(client, group_id, contact_ids)
    return group_id


async def new_contact_id(client: GraphQLClient, **values: Any) -> str:
    """Create a contact from ``ContactInput`` values (it must succeed); its id."""
    data = await client.data(CREATE_CONTACT, {"input": values})
    payload = data["createContact"]
    assert payload["errors"] == [], payload["errors"]
    return payload["contact"]["id"]


async def new_contact_ids(client: GraphQLClient, *last_names: str, **values: Any) -> list[str]:
    """Create one person per last name, each also with the ``ContactInput`` ``values``; their
    ids, in the same order."""
    return [await new_contact_id(client, lastName=name, **values) for name in last_names]


async def new_template_id(
    client: GraphQLClient,
    name: str = "Welkom",
    subject: str = "Welkom",
    body: str = "Beste {{ contact.firstName }}",
) -> str:
    """Create an e-mail template (it must succeed), e.g. for ``newMemberEmailTemplateId``;
    its id."""
    data = await client.data(
        CREATE_EMAIL_TEMPLATE, {"input": {"name": name, "subject": subject, "body": body}}
    )
    payload = data["createEmailTemplate"]
    assert payload["errors"] == [], payload["errors"]
    return payload["emailTemplate"]["id"]


async def first_user_id(client: GraphQLClient) -> str:
    """The id of the first user, in a test's fresh database the acting admin: a value for
    ``responsibleId``."""
    return (await client.data("{ users { id } }"))["users"][0]["id"]


async def add_members(
    client: GraphQLClient, group_id: str, contact_ids: list[str]
) -> dict[str, Any]:
    """Add contacts to a static group (it must succeed); the ``addGroupMembers`` payload.
    Send ``ADD_MEMBERS`` yourself to see a refusal."""
    return await _changed_members(client, ADD_MEMBERS, group_id, contact_ids)


async def remove_members(
    client: GraphQLClient, group_id: str, contact_ids: list[str]
) -> dict[str, Any]:
    """Remove contacts from a static group (it must succeed); the ``removeGroupMembers``
    payload. Send ``REMOVE_MEMBERS`` yourself to see a refusal."""
    return await _changed_members(client, REMOVE_MEMBERS, group_id, contact_ids)


async def _changed_members(
    client: GraphQLClient, mutation: str, group_id: str, contact_ids: list[str]
) -> dict[str, Any]:
    """Send ``ADD_MEMBERS`` or ``REMOVE_MEMBERS``, which answer alike; the payload, which
    must have no errors."""
    data = await client.data(mutation, {"groupId": group_id, "contactIds": contact_ids})
    payload = next(iter(data.values()))
    assert payload["errors"] == [], payload["errors"]
    return payload


async def member_names(client: GraphQLClient, group_id: str) -> list[str]:
    """The last names of a group's members, in the API's order, once ``memberCount`` and the
    member list are checked to agree."""
    group = (await client.data(GROUP_MEMBERS, {"id": group_id}))["group"]
    names = [node["lastName"] for node in group["members"]["nodes"]]
    assert group["memberCount"] == group["members"]["totalCount"] == len(names)
    return names
