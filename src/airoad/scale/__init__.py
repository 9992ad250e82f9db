"""Training at scale on CPU processes: data parallelism, ring all-reduce and sharding (gloo)."""
