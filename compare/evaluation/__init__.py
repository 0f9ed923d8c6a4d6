"""The `evaluation` family: one comparison per concept."""
