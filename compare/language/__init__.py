"""The `language` family: one comparison per concept."""
