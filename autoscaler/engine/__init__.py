"""The replica engine: pure functions from trigger readings to the replica count (no I/O, no clock)."""
