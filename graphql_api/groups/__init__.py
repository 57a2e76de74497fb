"""Groups of contacts, static, dynamic and composite, with their memberships and history.

The domain is split by concern: ``group_settings`` (the form's fields), ``structure``
(composition, filter, cycles), ``lifecycle`` (create, update, delete, convert),
``membership_writes`` and ``membership_reads``; ``api/`` is the GraphQL layer.
"""
