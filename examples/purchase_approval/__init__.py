"""Human approval: hold budget, wait up to 24h for a reviewer; rejection or silence releases it."""
