"""Universes: named sets of symbols with point-in-time membership, so research over a past
period uses the members of that period (survivorship is explicit)."""
