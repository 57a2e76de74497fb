"""What the group mail tests share: the mutations and queries, and reading a mail back."""

from __future__ import annotations

import re
from email.message import Message
from typing import Any

from graphql_api.plugin import decode_id
from graphql_api.testing import GraphQLClient

SEND = """mutation($input: SendGroupMailInput!) { sendGroupMail(input: $input) {
  groupMail { id } job { id state } testMessageId errors { field code message } } }"""
RETRY = """mutation($id: ID!) { retryGroupMail(id: $id) {
  groupMail { id } job { id } errors { field code message } } }"""
CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { job { state } errors { code } } }"
MAIL = """query($id: ID!, $state: GroupMailRecipientState, $first: Int, $after: String) {
  groupMail(id: $id) { subject groupName group { id } job { state total done }
    counts { queued sent failed skipped total }
    recipients(state: $state, first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes { contact { id firstName } state reason email sentAt } } } }"""
PREVIEW = """query($g: ID!, $t: ID, $s: String, $b: String, $c: ID) {
  previewGroupMail(groupId: $g, templateId: $t, subject: $s, body: $b, contactId: $c) {
    preview { subject text html contact { id } } errors { field code message } } }"""
MESSAGE_ID = re.compile(r"<groupmail-(\d+)-contact-(\d+)@zonnedael\.coop>")


def pk(global_id: str, type_name: str = "Contact") -> int:
    return decode_id(global_id, type_name, ["id"])


async def send(client: GraphQLClient, **given: Any) -> dict[str, Any]:
    """``sendGroupMail`` with ``given`` as its input; the payload."""
    return (await client.data(SEND, {"input": given}))["sendGroupMail"]


async def sent(client: GraphQLClient, **given: Any) -> str:
    """``sendGroupMail`` that must be accepted; the group mail's id."""
    payload = await send(client, **given)
    assert payload["errors"] == [], payload["errors"]
    return payload["groupMail"]["id"]


async def read(client: GraphQLClient, mail_id: str, **arguments: Any) -> dict[str, Any]:
    data = await client.data(MAIL, {"id": mail_id, **arguments})
    return data["groupMail"]


def mail_and_contact(message: Message) -> tuple[int, int]:
    match = MESSAGE_ID.fullmatch(message["Message-ID"])
    assert match, message["Message-ID"]
    return int(match[1]), int(match[2])
