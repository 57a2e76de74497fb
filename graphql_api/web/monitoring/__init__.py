"""What operators watch: health probes, Prometheus metrics and the request log
(docs/operations.md)."""
