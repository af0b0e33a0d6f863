"""models/training/__init__.py"""
