"""Containers (zip, tar, 7z, compressed streams): each member read the way its loader reads it."""
