"""The HTTP interceptor: a reverse proxy that routes like the KEDA HTTP add-on, holds requests for
workloads at zero until they are ready, and streams per-route counts to the operator."""
