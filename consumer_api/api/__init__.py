"""The HTTP layer: one Flask blueprint per resource. Only this package imports Flask."""
