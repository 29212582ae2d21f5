"""Package booking: a flight, a hotel package as a sub-saga, a fallback package, the charge."""
