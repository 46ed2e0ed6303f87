"""Every HTTP route handler, and the request helpers they share."""
