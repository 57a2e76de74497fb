"""Contact imports: reading an uploaded CSV or XLSX file into rows (``reading``), the
values in its cells (``values``) and the errors both raise (``errors``). Mapping columns
to contact fields and writing contacts are built on these."""
