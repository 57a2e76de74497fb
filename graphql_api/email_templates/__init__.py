"""E-mail templates, rendered in a sandbox (the mail to new members of a group)."""
