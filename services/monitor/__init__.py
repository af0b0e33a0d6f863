"""What the models do in production: agreement from overrides and drift of inputs and outputs."""
