"""The `training` family: one comparison per concept."""
