"""The `advanced` family: NumPy twins with hand-written backward passes."""
