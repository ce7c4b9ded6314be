"""rgdiff_core (exports filled in once all modules land)."""
