"""The `sequence` family: one comparison per concept."""
