"""Keras models (.keras archives, model folders, HDF5): the config that loading would run."""
