"""The customer portal (klantenportaal): contacts see and change their own groups."""
