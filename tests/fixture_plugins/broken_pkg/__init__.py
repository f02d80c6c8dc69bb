"""A package holding no plugin modules."""
