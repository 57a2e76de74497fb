"""Maps column names to the API's field names, for error paths."""


def api_field(column: str) -> str:
    """``responsible_id`` -> ``responsibleId``: how a caller sees the field."""
    head, *rest = column.split("_")
    return head + "".join(part.capitalize() for part in rest)
