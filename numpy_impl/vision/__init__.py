"""The `vision` family: NumPy twins with hand-written backward passes."""
