"""Production and MLOps: tracking, export, serving, containers and CI, drift, compression, distillation."""
