//! Per-replica resilience at the vendor edge (placeholder while the state seam builds).
