"""Demo data for ``make run``: a few users, ~50 Dutch contacts and groups using every setting.

Everything goes through the domain services, so the demo obeys the same rules as the API.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from datetime import date
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.contacts.service import create_contact
from graphql_api.email_templates.service import create_email_template
from graphql_api.groups.lifecycle import create_group
from graphql_api.groups.membership_writes import add_members
from graphql_api.groups.models import MembershipSource
from graphql_api.kernel.access import EVERY_PERMISSION, SYSTEM, Principal
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.portal.accounts import accept_invitation, invite_portal_user
from graphql_api.settings import Settings
from graphql_api.users.accounts import create_user
from graphql_api.users.models import User
from graphql_api.users.staff_roles import role_named
from graphql_api.web.app import load_plugins

FIRST_NAMES = [
    "Anna",
    "Bram",
    "Cor",
    "Daan",
    "Eva",
    "Fleur",
    "Gert",
    "Hanneke",
    "Iris",
    "Joost",
    "Kees",
    "Lotte",
    "Marieke",
    "Niels",
    "Oscar",
    "Petra",
    "Ruud",
    "Sanne",
    "Tijs",
    "Ursula",
    "Vera",
    "Wim",
    "Yvonne",
    "Zoë",
    "Anouk",
]
LAST_NAMES = [
    "de Vries",
    "Jansen",
    "van den Berg",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Dijk",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
]
STREETS = ["Dorpsstraat", "Kerkweg", "Molenlaan", "Zonnebloemstraat", "Windmolenpad", "Beukenlaan"]
CITIES = [
    ("Zwolle", "80"),
    ("Deventer", "74"),
    ("Utrecht", "35"),
    ("Groningen", "97"),
    ("Nijmegen", "65"),
]
ORGANISATIONS = [
    "Energiecoöperatie Zonnedael",
    "Wooncorporatie De Linde",
    "Installatiebedrijf Warm",
    "Buurtvereniging 't Hofje",
    "Gemeente Zwolle",
]


class DemoLogin(NamedTuple):
    """How to act as one demo user (by staff role) or as the demo's portal contact."""

    kind: str
    name: str
    credentials: str


DEMO_PORTAL_PASSWORD = "zonnedak-portaal-2025"
"""The demo portal contact's password; printed by ``seed --demo``, a demo only."""


DEMO_USERS = [
    ("Johannes Frölich", "johannes@example.coop", "admin"),
    ("Anna de Vries", "anna@example.coop", "manager"),
    ("Pieter Jansen", "pieter@example.coop", "viewer"),
]
"""One demo user per built-in staff role."""


async def seed_demo(settings: Settings) -> list[DemoLogin] | None:
    """Load the demo into an empty database and return its users' tokens; None (and no
    change) when the database holds data already.

    The installed plugins' rules apply, so the demo can use their roles.
    """
    engine = create_engine(settings.direct_url)  # a one-off load: past any pooler
    plugins = load_plugins(settings)
    rules = plugins.rules()
    info = {"rules": rules, "permissions": plugins.permissions}
    try:
        async with create_sessionmaker(engine, info)() as session, session.begin():
            if await session.scalar(select(User.id).limit(1)) is not None:
                return None
            return await _load(session, rules.roles)
    finally:
        await engine.dispose()


async def _load(session: AsyncSession, roles: Collection[str]) -> list[DemoLogin]:
    rng = random.Random(2025)
    tokens: list[DemoLogin] = []
    users: dict[str, User] = {}
    for name, email, role in DEMO_USERS:
        staff_role = await role_named(session, role)
        assert staff_role is not None, f"the migrations write the built-in role {role!r}"
        values = {"name": name, "email": email, "role_id": staff_role.id}
        users[role], token = await create_user(session, SYSTEM, values)
        tokens.append(DemoLogin(role, name, f"Authorization: Bearer {token}"))
    johannes, anna = users["admin"], users["manager"]
    # The demo's groups are Johannes's: he is their creator in the history.
    as_johannes = Principal(johannes.name, frozenset({EVERY_PERMISSION}), user_id=johannes.id)

    contact_ids: list[int] = []
    for index in range(45):
        city, postcode = rng.choice(CITIES)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        contact = await create_contact(
            session,
            SYSTEM,
            {
                "first_name": first,
                "last_name": last,
                "email": None
                if index % 9 == 4
                else f"{first}.{last}.{index}".lower().replace(" ", "") + "@example.nl",
                "phone": f"06-{rng.randrange(10_000_000, 99_999_999)}",
                "street": f"{rng.choice(STREETS)} {rng.randrange(1, 200)}",
                "postal_code": f"{postcode}{rng.randrange(10, 99)} {rng.choice('ABCDEFGHJK')}"
                f"{rng.choice('LMNPRSTVWXZ')}",
                "city": city,
            },
        )
        contact_ids.append(contact.id)
    for name in ORGANISATIONS:
        organisation = await create_contact(
            session,
            SYSTEM,
            {
                "kind": "ORGANISATION",
                "organisation_name": name,
                "email": "info@example.org",
                "city": rng.choice(CITIES)[0],
            },
        )
        contact_ids.append(organisation.id)

    welcome = await create_email_template(
        session,
        SYSTEM,
        {
            "name": "Welkom in de groep",
            "subject": "Welkom bij {{ group.name }}",
            "body": "Beste {{ contact.firstName }},\n\nWelkom bij {{ group.name }}.",
        },
    )
    await create_email_template(
        session,
        SYSTEM,
        {
            "name": "Uitnodiging ledenvergadering",
            "subject": "Uitnodiging",
            "body": "Beste lid,\n\nU bent uitgenodigd voor de ledenvergadering.",
        },
    )

    groups = [
        (
            {
                "name": "Nieuwsbrief",
                "description": "Leden en belangstellenden die de maandelijkse nieuwsbrief krijgen.",
                "responsible_id": anna.id,
                "show_on_portal": True,
                "editable_on_portal": True,
                "show_on_contact": True,
                "email_on_new_member": True,
                "new_member_email_template_id": welcome.id,
            },
            contact_ids[:30],
        ),
        (
            {
                "name": "Zonnepanelen project Zonnedael 2024",
                "description": "Deelnemers aan het collectieve zonnedak.",
                "responsible_id": johannes.id,
                "start_date": date(2024, 3, 1),
                "end_date": date(2024, 12, 31),
                "closed": True,
            },
            contact_ids[10:22],
        ),
        (
            {
                "name": "Warmtepomp interesse",
                "description": "Contacten die informatie over warmtepompen willen.",
                "responsible_id": anna.id,
                "start_date": date(2025, 9, 2),
                "show_on_contact": True,
            },
            contact_ids[20:38],
        ),
        ({"name": "Ledenvergadering 2025", "show_on_portal": True}, contact_ids[::3]),
        (
            {
                "name": "Energiecoaches",
                "description": "Vrijwillige energiecoaches; te koppelen aan Hoomdossier.",
                **({"neighbourhood_role": "coach"} if "coach" in roles else {}),
            },
            contact_ids[40:45],
        ),
    ]
    made = {}
    for values, members in groups:
        group = await create_group(session, as_johannes, values)
        await add_members(session, as_johannes, group.id, members, MembershipSource.IMPORT)
        made[group.name] = group.id
    composite = {
        "name": "Nieuwsbrief of warmtepomp, geen ledenvergadering",
        "description": "Samengesteld: leden van een van beide groepen, min de genodigden.",
        "composed_of_ids": [made["Nieuwsbrief"], made["Warmtepomp interesse"]],
        "excluded_group_ids": [made["Ledenvergadering 2025"]],
        "show_on_contact": True,
        "responsible_id": anna.id,
    }
    await create_group(session, as_johannes, composite)
    in_zwolle_without_newsletter = {
        "all": [
            {"condition": {"field": "city", "op": "EQ", "value": "Zwolle"}},
            {
                "not": {
                    "condition": {
                        "field": "memberOf",
                        "op": "EQ",
                        "value": str(made["Nieuwsbrief"]),
                    }
                }
            },
        ]
    }
    await create_group(
        session,
        as_johannes,
        {
            "name": "Zwolle zonder nieuwsbrief",
            "description": "Dynamisch: inwoners van Zwolle die de nieuwsbrief nog niet krijgen.",
            "filter": in_zwolle_without_newsletter,
            "show_on_contact": True,
        },
    )
    # Not in the newsletter yet, so joining it on the portal shows something happen.
    portal_contact = await session.get(Contact, contact_ids[30])
    assert portal_contact is not None and portal_contact.email
    _, invitation = await invite_portal_user(session, SYSTEM, portal_contact.id)
    await accept_invitation(session, invitation, DEMO_PORTAL_PASSWORD)
    credentials = f"/portal/graphql portalLogin({portal_contact.email} / {DEMO_PORTAL_PASSWORD})"
    tokens.append(DemoLogin("portal", portal_contact.display_name, credentials))
    return tokens
