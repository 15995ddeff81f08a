"""Sweeps: planning methods x labeled amounts x seeds, and executing them here, in worker
processes or on a cluster."""
