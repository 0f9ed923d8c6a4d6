"""The `language` family: NumPy twins with hand-written backward passes."""
