"""The `training` family: NumPy twins with hand-written backward passes."""
