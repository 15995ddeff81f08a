"""Built-in SSL methods, one module each; importing a module registers its method."""
