"""The `layers` family: NumPy twins with hand-written backward passes."""
