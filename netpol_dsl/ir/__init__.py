"""The one intermediate representation every target reads: frozen, normalised, sorted."""
