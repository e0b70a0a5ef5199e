"""Consumer groups of the embedded engine: membership, assignment, committed offsets."""
