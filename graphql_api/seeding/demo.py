"""Demo data for ``make run``: a few users, ~50 Dutch contacts and groups using every setting.

Everything goes through the domain services, so the demo obeys the same rules as the API.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.app import load_plugins
from graphql_api.contacts.service import create_contact
from graphql_api.email_templates.service import create_email_template
from graphql_api.groups.lifecycle import create_group
from graphql_api.groups.membership_writes import add_members
from graphql_api.groups.models import MembershipSource
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.settings import Settings
from graphql_api.users.models import User
from graphql_api.users.service import create_user

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


async def seed_demo(settings: Settings) -> bool:
    """Load the demo into an empty database; returns False (and changes nothing) otherwise.

    The installed plugins' rules apply, so the demo can use their roles.
    """
    engine = create_engine(settings.database_url)
    rules = load_plugins(settings).rules()
    try:
        async with create_sessionmaker(engine, {"rules": rules})() as session, session.begin():
            if await session.scalar(select(User.id).limit(1)) is not None:
                return False
            await _load(session, rules.roles)
            return True
    finally:
        await engine.dispose()


async def _load(session: AsyncSession, roles: Collection[str]) -> None:
    rng = random.Random(2025)
    johannes, _ = await create_user(
        session, name="Johannes Frölich", email="johannes@example.coop", admin=True
    )
    anna, _ = await create_user(session, name="Anna de Vries", email="anna@example.coop")
    await create_user(session, name="Pieter Jansen", email="pieter@example.coop")

    contact_ids: list[int] = []
    for index in range(45):
        city, postcode = rng.choice(CITIES)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        contact = await create_contact(
            session,
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
        {
            "name": "Welkom in de groep",
            "subject": "Welkom bij {{ group.name }}",
            "body": "Beste {{ contact.firstName }},\n\nWelkom bij {{ group.name }}.",
        },
    )
    await create_email_template(
        session,
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
        group = await create_group(session, johannes, values)
        await add_members(session, johannes, group.id, members, MembershipSource.IMPORT)
        made[group.name] = group.id
    composite = {
        "name": "Nieuwsbrief of warmtepomp, geen ledenvergadering",
        "description": "Samengesteld: leden van een van beide groepen, min de genodigden.",
        "composed_of_ids": [made["Nieuwsbrief"], made["Warmtepomp interesse"]],
        "excluded_group_ids": [made["Ledenvergadering 2025"]],
        "show_on_contact": True,
        "responsible_id": anna.id,
    }
    await create_group(session, johannes, composite)
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
        johannes,
        {
            "name": "Zwolle zonder nieuwsbrief",
            "description": "Dynamisch: inwoners van Zwolle die de nieuwsbrief nog niet krijgen.",
            "filter": in_zwolle_without_newsletter,
            "show_on_contact": True,
        },
    )
