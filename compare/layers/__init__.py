"""The `layers` family: one comparison per concept."""
