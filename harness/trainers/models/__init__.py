"""Model definitions trainers build on."""
