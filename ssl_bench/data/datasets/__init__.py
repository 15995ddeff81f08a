"""Built-in data sets; importing a module registers its data set(s)."""
