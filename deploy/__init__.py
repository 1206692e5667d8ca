"""Local stack: configuration and process supervision for `make up`."""
