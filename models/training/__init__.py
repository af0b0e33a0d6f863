"""Everything that trains, renders training phantoms, ablates, fits calibrations on phantoms
or evaluates models. Serving (the rest of radstream.models) never imports it; only the
`radstream models ...` commands do (services/commands/models.py), enforced by import-linter.
"""
