"""Collectors: plain functions that gather facts and findings. They never print, exit or decide."""
