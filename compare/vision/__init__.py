"""The `vision` family: one comparison per concept."""
