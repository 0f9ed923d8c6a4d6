"""The `advanced` family: one comparison per concept."""
