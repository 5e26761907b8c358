"""The live shell: Kubernetes in, engine decisions out. Thin on purpose; the logic is in the engine."""
