"""Contacts: the persons and organisations groups are made of."""
