"""Neighbourhood roles (Rol in buurtaanpak): registered by plugins, given by groups; the
rules all roles share are the built-in plugin ``core_plugin``."""
