//! Pure policy decisions for pairgate grants. No I/O.
