"""Training: configs and method presets (config.py), methods (methods.py), the loop (engine.py), state files."""
