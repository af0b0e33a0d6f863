"""domain/__init__.py"""
