"""Bridges to other libraries, each importing its library only when used."""
