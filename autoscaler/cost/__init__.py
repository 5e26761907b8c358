"""Cost reports from a live cluster: prices, OpenCost-style allocation from Prometheus, what-if."""
