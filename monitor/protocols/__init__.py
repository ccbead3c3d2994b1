"""One reader per lending-protocol family."""
