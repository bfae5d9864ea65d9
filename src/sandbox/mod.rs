//! Sandboxes: in-memory, stateful simulators of the vendor APIs.
