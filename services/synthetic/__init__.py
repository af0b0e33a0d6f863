"""services/synthetic/__init__.py"""
