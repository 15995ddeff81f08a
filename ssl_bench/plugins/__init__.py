"""The one plug-in mechanism: name -> object registries, their index, declared options
and the plug-in files kept beside results."""
