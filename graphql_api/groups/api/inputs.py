"""GraphQL inputs of groups: the settings of the "Nieuwe groep" form, declared once and
shared by ``CreateGroupInput`` and ``UpdateGroupInput``, and the ``groups`` list filter."""

# Strawberry reads the generated inputs' annotations at runtime: no postponed annotations.
from dataclasses import dataclass
from datetime import date
from typing import Any

import strawberry

from graphql_api.graphql_base.mutations import given_fields
from graphql_api.graphql_base.relay import decode_id, decode_ids, query_id
from graphql_api.graphql_base.text_inputs import query_search
from graphql_api.groups.api.filters import ContactFilterInput
from graphql_api.groups.api.types import CompositionModeType, GroupKindType
from graphql_api.groups.listing import GroupCriteria


@dataclass(frozen=True)
class Setting:
    """One field of the group form: its domain name, GraphQL type and description."""

    name: str
    type: Any
    description: str


GROUP_SETTINGS = (
    Setting(
        "name",
        str,
        "Name (Naam): required, unique case-insensitively, at most 200 characters.",
    ),
    Setting("description", str, "Description (Omschrijving), at most 10,000 characters."),
    Setting("responsible_id", strawberry.ID, "User responsible for the group (Verantwoordelijke)."),
    Setting("start_date", date, "Start date (Startdatum)."),
    Setting("end_date", date, "End date (Datum gereed); not before startDate."),
    Setting("show_on_portal", bool, "Zichtbaar op portaal."),
    Setting("show_on_contact", bool, "Zichtbaar bij contact."),
    Setting("editable_on_portal", bool, "Veranderen op portaal."),
    Setting(
        "email_on_new_member",
        bool,
        "Verstuur e-mail bij nieuwe contactkoppeling; needs a template.",
    ),
    Setting("new_member_email_template_id", strawberry.ID, "The template sent to new members."),
    Setting(
        "neighbourhood_role",
        str,
        "Key of a registered role (Rol in buurtaanpak), e.g. `coach`.",
    ),
    Setting("closed", bool, "Gesloten (archived)."),
    Setting(
        "composed_of_ids",
        list[strawberry.ID],
        "Groups this composite is built from (Samengesteld uit); any kind, nested to any "
        "depth. Empty makes a static group.",
    ),
    Setting(
        "composition_mode",
        CompositionModeType,
        "ANY (union, default) or ALL (intersection) of composedOfIds.",
    ),
    Setting(
        "excluded_group_ids",
        list[strawberry.ID],
        "Groups whose members are removed from the composite.",
    ),
    Setting(
        "filter",
        ContactFilterInput,
        "Makes the group dynamic: its members are the contacts matching this filter.",
    ),
)


def _settings_input(name: str, description: str, required: frozenset[str]) -> Any:
    """An input with every group setting: those in ``required`` must be given, the others
    may be left out (UNSET, so an update tells "absent" from "null")."""
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__annotations__": annotations}
    for setting in GROUP_SETTINGS:
        if setting.name in required:
            annotations[setting.name] = setting.type
            namespace[setting.name] = strawberry.field(description=setting.description)
        else:
            annotations[setting.name] = setting.type | None
            namespace[setting.name] = strawberry.field(
                default=strawberry.UNSET, description=setting.description
            )
    return strawberry.input(type(name, (), namespace), description=description)


CreateGroupInput = _settings_input(
    "CreateGroupInput",
    "A new group. Absent settings take their defaults (off, empty).",
    required=frozenset({"name"}),
)
UpdateGroupInput = _settings_input(
    "UpdateGroupInput",
    "Changes to a group: absent fields stay unchanged, null clears.",
    required=frozenset(),
)

REFERENCES = {"responsible_id": "User", "new_member_email_template_id": "EmailTemplate"}


def group_values(input_object: Any) -> dict[str, Any]:
    """The settings the caller gave (of either input), with global ids turned into
    primary keys and the filter into the domain's tree."""
    values = given_fields(input_object)
    for setting, type_name in REFERENCES.items():
        if values.get(setting) is not None:
            values[setting] = decode_id(values[setting], type_name, [setting])
    for setting in ("composed_of_ids", "excluded_group_ids"):
        if values.get(setting) is not None:
            values[setting] = decode_ids(values[setting], "Group", [setting])
    if values.get("filter") is not None:
        values["filter"] = values["filter"].to_domain()
    return values


@strawberry.input(description="Narrows `groups`; every criterion given must hold.")
class GroupFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive text in the name."
    )
    kind: GroupKindType | None = strawberry.field(default=None, description="Only this kind.")
    closed: bool | None = strawberry.field(
        default=None, description="false for open groups (default pickers), true for archived."
    )
    responsible_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only groups this user is responsible for."
    )
    neighbourhood_role: str | None = strawberry.field(
        default=None, description="Only groups giving this role key."
    )
    has_member_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only groups this contact is in."
    )

    def criteria(self) -> GroupCriteria:
        return GroupCriteria(
            search=query_search(self.search),
            kind=self.kind,
            closed=self.closed,
            responsible_id=query_id(self.responsible_id, "User") if self.responsible_id else None,
            neighbourhood_role=self.neighbourhood_role,
        )
