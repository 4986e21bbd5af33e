"""lrlaws: empirical laws of neural-network training as statistical assertions."""
from harness.recipe import Ensemble, Recipe, RecipeError

__all__ = ["Ensemble", "Recipe", "RecipeError"]
__version__ = "0.1.0"
