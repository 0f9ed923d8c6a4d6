"""The `transformer` family: one comparison per concept."""
